package payload_test

import (
	"fmt"
	"time"

	"github.com/edged-io/edged/sensors/payload"
)

func Example() {
	d, err := payload.New(payload.Config{
		Format: payload.FormatJSON,
		Series: "{2}/{field}",
		Fields: []payload.Field{
			{Path: "env.temp", Series: "temperature", Unit: "°C"},
			{Path: "env.hum", Series: "humidity", Unit: "%"},
		},
		Time: payload.TimeSpec{Path: "ts", Format: payload.TimeUnixMS},
	}, "pi-greenhouse")
	if err != nil {
		panic(err)
	}
	ingest := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	rs, err := d.Decode(nil, "site/greenhouse/state", []byte(`{"ts":1714564799000,"env":{"temp":21.5,"hum":"n/a"}}`), ingest)
	for _, r := range rs {
		fmt.Println(r.Device, r.Series, r.Value, r.Unit, time.Unix(0, r.Time).UTC().Format(time.RFC3339))
	}
	fmt.Println(err)
	// Output:
	// pi-greenhouse greenhouse/temperature 21.5 °C 2024-05-01T11:59:59Z
	// payload: topic "site/greenhouse/state": not_numeric: field "env/hum": holds the string "n/a" (set strings: true or booleans: true if such values are expected, or choose another path)
}

func ExampleNew_zigbee2mqtt() {
	d, _ := payload.New(payload.Config{Format: payload.FormatZigbee2MQTT}, "pi")
	rs, err := d.Decode(nil, "zigbee2mqtt/bathroom", []byte(`{"battery":97,"humidity":64.1,"temperature":22.4,"voltage":2985}`), 0)
	for _, r := range rs {
		fmt.Printf("%s %v %s\n", r.Series, r.Value, r.Unit)
	}
	fmt.Println(err)
	// Output:
	// bathroom/battery 97 %
	// bathroom/humidity 64.1 %
	// bathroom/temperature 22.4 °C
	// bathroom/voltage 2985 mV
	// <nil>
}
