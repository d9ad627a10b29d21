// Command pahocount is a benchmark reference: a paho.mqtt.golang subscriber
// that only counts messages, the floor for any paho-based consumer. It
// exits after -n messages and prints the count.
package main

import (
	"flag"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

func main() {
	broker := flag.String("broker", "tcp://127.0.0.1:1883", "broker URL")
	topic := flag.String("topic", "sensors/#", "topic filter")
	qos := flag.Int("qos", 0, "QoS")
	n := flag.Int64("n", 1, "exit after this many messages")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long")
	flag.Parse()
	var count atomic.Int64
	done := make(chan struct{})
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(*broker).SetClientID(fmt.Sprintf("pahocount-%d", os.Getpid())))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		fmt.Fprintln(os.Stderr, "connect:", tok.Error())
		os.Exit(1)
	}
	tok := c.Subscribe(*topic, byte(*qos), func(mqtt.Client, mqtt.Message) {
		if count.Add(1) == *n {
			close(done)
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		fmt.Fprintln(os.Stderr, "subscribe:", tok.Error())
		os.Exit(1)
	}
	fmt.Println("subscribed")
	select {
	case <-done:
	case <-time.After(*timeout):
	}
	fmt.Println(count.Load())
	c.Disconnect(100)
}
