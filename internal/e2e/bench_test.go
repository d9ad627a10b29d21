package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged-io/edged/internal/servicetest"
)

// BenchmarkIngest: end-to-end MQTT ingest through a local mosquitto into
// edged (WAL under fsync=interval, windows of 10s/1m/1h, sketches on),
// beside two references measured in the same run on the same broker and
// publisher: a paho subscriber that only counts (the floor for any
// paho-based consumer) and mosquitto_sub > /dev/null (the broker's own
// delivery ceiling). Run with -benchtime 1x; EDGED_BENCH_MSGS sets the
// message count (default 100,000) and EDGED_BENCH_ENV one extra environment
// variable for edged (e.g. GOMEMLIMIT=16MiB, to study memory against CPU).
func BenchmarkIngest(b *testing.B) {
	n := 100_000
	if s := os.Getenv("EDGED_BENCH_MSGS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	pahocount := filepath.Join(b.TempDir(), "pahocount")
	if out, err := shippedBuild(pahocount, "./pahocount").CombinedOutput(); err != nil {
		b.Fatalf("build pahocount: %v\n%s", err, out)
	}
	for _, series := range []int{100, 1000} {
		for _, qos := range []int{0, 1} {
			b.Run(fmt.Sprintf("series=%d/qos=%d", series, qos), func(b *testing.B) {
				var paho, mosq, ed result
				for b.Loop() {
					broker := servicetest.StartMosquitto(b, servicetest.MosquittoOptions{ExtraConfig: brokerLimits})
					paho = runProcessRef(b, broker.URL, exec.Command(pahocount, "-broker", broker.URL, "-qos", strconv.Itoa(qos), "-n", strconv.Itoa(n), "-timeout", "60s"), series, qos, n)
					mosq = runProcessRef(b, broker.URL, exec.Command("mosquitto_sub", "-h", "127.0.0.1", "-p", strconv.Itoa(broker.Port),
						"-t", "sensors/#", "-q", strconv.Itoa(qos), "-C", strconv.Itoa(n)), series, qos, n)
					ed = runEdgedIngest(b, broker.URL, series, qos, n)
				}
				b.ReportMetric(ed.rate(), "edged-msgs/s")
				b.ReportMetric(paho.rate(), "paho-msgs/s")
				b.ReportMetric(mosq.rate(), "mosq-msgs/s")
				b.ReportMetric(ed.rate()/paho.rate(), "x-paho-rate")
				b.ReportMetric(ed.cpuPerM(), "edged-cpu-s/M")
				b.ReportMetric(paho.cpuPerM(), "paho-cpu-s/M")
				b.ReportMetric(ed.cpuPerM()/paho.cpuPerM(), "x-paho-cpu")
				b.ReportMetric(float64(ed.rssKiB)/1024, "edged-peak-RSS-MiB")
				// RSS is anonymous memory (heap, stacks) plus the pages of
				// the executable mapped in: the latter grows with the
				// binary, not with the load.
				b.ReportMetric(float64(ed.mem.anon)/1024, "edged-peak-anon-MiB")
				b.ReportMetric(float64(ed.mem.file)/1024, "edged-file-MiB")
				b.ReportMetric(float64(paho.rssKiB)/1024, "paho-peak-RSS-MiB")
				b.ReportMetric(float64(paho.mem.anon)/1024, "paho-peak-anon-MiB")
				b.ReportMetric(float64(paho.mem.file)/1024, "paho-file-MiB")
				// Lost: accepted by the broker, not received (acknowledged,
				// for edged at QoS 1). At QoS 1 the publisher's count is
				// what the broker acknowledged to it.
				b.ReportMetric(float64(ed.accepted-ed.received), "edged-lost")
				b.ReportMetric(float64(paho.accepted-paho.received), "paho-lost")
				b.ReportMetric(float64(mosq.accepted-mosq.received), "mosq-lost")
				b.ReportMetric(float64(n-ed.accepted), "publisher-unacked")
			})
		}
	}
}

type result struct {
	received int
	accepted int // by the broker, from the publisher (-1: not known)
	elapsed  time.Duration
	cpu      time.Duration
	rssKiB   int64 // peak
	mem      memPeak
}

// memPeak is a process's peak anonymous memory (heap, stacks: sampled
// every 5 ms), its file-backed RSS (the executable's mapped pages) at that
// moment, and its peak RSS (VmHWM) at the last sample, in KiB.
//
// Not getrusage's ru_maxrss: for a child started by os/exec (vfork) it is
// at least the parent's RSS at exec, here the benchmark's own 17 MiB.
type memPeak struct{ anon, file, hwm int64 }

// sampleMem samples pid until stop is closed, then sends the peak.
func sampleMem(pid int, stop <-chan struct{}) <-chan memPeak {
	out := make(chan memPeak, 1)
	go func() {
		var m memPeak
		for {
			if a := procStatusKiB(pid, "RssAnon"); a > m.anon {
				m.anon, m.file = a, procStatusKiB(pid, "RssFile")
			}
			m.hwm = max(m.hwm, procStatusKiB(pid, "VmHWM"))
			select {
			case <-stop:
				out <- m
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return out
}

func (r result) rate() float64    { return float64(r.received) / r.elapsed.Seconds() }
func (r result) cpuPerM() float64 { return r.cpu.Seconds() / float64(r.received) * 1e6 }

// publishN publishes n readings over `series` topics as fast as the
// publisher goes (QoS 1: waits for every PUBACK at the end) and returns
// how many the broker accepted: at QoS 1 those it acknowledged, the set a
// consumer must receive (a publish paho gave up on is not the consumer's
// loss); at QoS 0, n.
func publishN(b *testing.B, url string, series, qos, n int) (accepted int) {
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("bench-pub-%d", time.Now().UnixNano())))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Errorf("publisher: %v", tok.Error()) // the waiting side times out
		return 0
	}
	defer c.Disconnect(100)
	t0 := time.Now().UnixMilli()
	var toks []mqtt.Token
	for k := range n {
		i, j := k%series, k/series
		tok := c.Publish(fmt.Sprintf("sensors/s%d", i), byte(qos), false,
			fmt.Sprintf(`{"ts":%d,"value":%d.25}`, t0-600_000+int64(j)*10+int64(i%10), k%100))
		if qos > 0 {
			toks = append(toks, tok)
		}
	}
	if qos == 0 {
		return n
	}
	for _, tok := range toks {
		if tok.WaitTimeout(time.Minute) && tok.Error() == nil {
			accepted++
		}
	}
	return accepted
}

// publishAsync runs publishN in the background; the channel gets its result.
func publishAsync(b *testing.B, url string, series, qos, n int) <-chan int {
	ch := make(chan int, 1)
	go func() { ch <- publishN(b, url, series, qos, n) }()
	return ch
}

// acceptedBy waits for the publisher's count (it is done once every
// PUBACK came or timed out).
func acceptedBy(ch <-chan int) int {
	select {
	case a := <-ch:
		return a
	case <-time.After(2 * time.Minute):
		return -1
	}
}

func runProcessRef(b *testing.B, url string, cmd *exec.Cmd, series, qos, n int) result {
	b.Helper()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	stopMem := make(chan struct{})
	mem := sampleMem(cmd.Process.Pid, stopMem)
	lines := bufio.NewScanner(out)
	if strings.Contains(cmd.Path, "pahocount") {
		lines.Scan() // "subscribed"
	} else {
		time.Sleep(500 * time.Millisecond)
	}
	start := time.Now()
	pub := publishAsync(b, url, series, qos, n)
	// The end is the moment the last message arrived: pahocount prints its
	// count at once (before disconnecting); mosquitto_sub prints messages
	// and exits after the n-th, so when fewer come it is stopped 30 s after
	// the last one.
	var last string
	var end time.Time
	var mu sync.Mutex
	lastLine := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
			mu.Lock()
			idle := time.Since(lastLine)
			mu.Unlock()
			if idle > 30*time.Second {
				cmd.Process.Kill()
				return
			}
		}
	}()
	lineCount := 0
	for lines.Scan() {
		mu.Lock()
		last, end, lastLine = lines.Text(), time.Now(), time.Now()
		mu.Unlock()
		lineCount++
	}
	close(stopMem) // before Wait: the pid must still be this process
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-done
	}
	elapsed := end.Sub(start)
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	m := <-mem
	received := lineCount // mosquitto_sub prints each message
	if strings.Contains(cmd.Path, "pahocount") {
		received, _ = strconv.Atoi(last)
	}
	return result{received: received, accepted: acceptedBy(pub), elapsed: elapsed,
		cpu:    time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		rssKiB: m.hwm, mem: m}
}

func runEdgedIngest(b *testing.B, url string, series, qos, n int) result {
	b.Helper()
	dir := b.TempDir()
	port := servicetest.FreePort(b)
	cfg := fmt.Sprintf(`device: bench
data_dir: %s
http: {listen: "127.0.0.1:%d"}
wal: {fsync: interval}
mqtt:
  broker: %s
  client_id: edged-bench
  subscriptions:
    - {topic: sensors/+, format: json, series: "{2}/{field}", fields: [{path: value}], time: {path: ts, format: unix_ms}, qos: %d}
sensors: {sim: {enabled: false}, thermal: {enabled: false}}
`, filepath.Join(dir, "data"), port, url, qos)
	path := filepath.Join(dir, "edged.yaml")
	os.WriteFile(path, []byte(cfg), 0o644)
	cmd := exec.Command(edgedBin, "run", "-c", path)
	cmd.Env = append(os.Environ(), os.Getenv("EDGED_BENCH_ENV"))
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	for deadline := time.Now().Add(15 * time.Second); ; {
		if v := metric(base, "edged_mqtt_connected"); v == 1 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("edged did not connect")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // subscription acknowledged
	cpu0 := procCPU(cmd.Process.Pid)
	start := time.Now()
	pub := publishAsync(b, url, series, qos, n)
	counter := "edged_mqtt_messages_total"
	if qos > 0 {
		counter = "edged_mqtt_acked_total" // durable and acknowledged
	}
	var got float64
	var end time.Time
	stopMem := make(chan struct{})
	mem := sampleMem(cmd.Process.Pid, stopMem)
	// Polled every 20 ms, uncompressed: every 5 ms with gzip (Go's
	// default) cost edged 200 renderings and 1.3 MiB gzip writers a second,
	// a third of its live heap during the burst.
	for stallSince := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		v := metric(base, counter)
		if v > got {
			got, end, stallSince = v, time.Now(), time.Now()
		}
		if int(got) >= n || time.Since(stallSince) > 5*time.Second {
			break
		}
	}
	close(stopMem)
	return result{received: int(got), accepted: acceptedBy(pub), elapsed: end.Sub(start), cpu: procCPU(cmd.Process.Pid) - cpu0,
		rssKiB: procStatusKiB(cmd.Process.Pid, "VmHWM"), mem: <-mem}
}

// plainHTTP asks for uncompressed responses.
var plainHTTP = &http.Client{Transport: &http.Transport{DisableCompression: true}}

func metric(base, name string) float64 {
	resp, err := plainHTTP.Get(base + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// procCPU is utime+stime of a live process.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// procStatusKiB is a kB field of /proc/PID/status (VmHWM: peak RSS).
func procStatusKiB(pid int, field string) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb
		}
	}
	return 0
}
