package kafkatest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Broker is a single-node Kafka (KRaft broker and controller in one JVM)
// run by Start, listening on 127.0.0.1 only.
type Broker struct {
	tb          testing.TB // of Start, for Restart's failure
	libs, dir   string
	port, cport int
	logPath     string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
}

// Timeouts of a broker's start and stop.
const (
	startTimeout = 60 * time.Second
	stopTimeout  = 30 * time.Second
)

// Start runs a private broker for tb on free ports of 127.0.0.1, with its
// data in a directory of tb.TempDir(), and stops it when the test ends. It
// needs SLUICE_KAFKA_LIBS, else it skips tb.
func Start(tb testing.TB) *Broker {
	tb.Helper()
	libs := os.Getenv(EnvLibs)
	if libs == "" {
		tb.Skip(skipMsg)
	}
	b, err := startBroker(libs, tb.TempDir())
	if err != nil {
		tb.Fatalf("kafkatest: %v", err)
	}
	b.tb = tb
	tb.Cleanup(b.stop)
	return b
}

// Addr is the broker's host:port.
func (b *Broker) Addr() string { return "127.0.0.1:" + strconv.Itoa(b.port) }

// Stop terminates the broker (SIGTERM, a controlled shutdown) and waits
// until it has exited. The ports and data stay for Restart.
func (b *Broker) Stop() { b.stop() }

// Restart starts the stopped broker again on the same ports and data and
// waits until it answers. It stops a running broker first. A failure
// fails the test that started the broker.
func (b *Broker) Restart() {
	b.tb.Helper()
	b.stop()
	if err := b.launch(); err != nil {
		b.tb.Fatalf("kafkatest: restart: %v", err)
	}
}

func startBroker(libs, dir string) (*Broker, error) {
	if _, err := os.Stat(libs); err != nil {
		return nil, fmt.Errorf("%s: %w (run scripts/kafka/fetch.sh)", EnvLibs, err)
	}
	port, cport, err := freePorts()
	if err != nil {
		return nil, err
	}
	b := &Broker{libs: libs, dir: dir, port: port, cport: cport, logPath: filepath.Join(dir, "broker.log")}
	if err := b.configure(); err != nil {
		return nil, err
	}
	if err := b.launch(); err != nil {
		return nil, err
	}
	return b, nil
}

// freePorts returns two ports of 127.0.0.1 that were free a moment ago.
func freePorts() (int, int, error) {
	var ports [2]int
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, fmt.Errorf("free port: %w", err)
		}
		defer l.Close() // held until both are chosen, so they differ
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports[0], ports[1], nil
}

// The broker configuration, as in scripts/kafka/broker.sh.
const serverProperties = `process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{cport}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={dir}/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# enforce retention every 0.5 s, not every 5 min: tests of records aging out
log.retention.check.interval.ms=500
`

const log4jProperties = `appender.out.type=Console
appender.out.name=OUT
appender.out.layout.type=PatternLayout
appender.out.layout.pattern=[%d] %p %m (%c)%n
rootLogger.level=INFO
rootLogger.appenderRef.out.ref=OUT
logger.clients.name=org.apache.kafka.clients
logger.clients.level=WARN
`

// configure writes the configuration and formats the storage.
func (b *Broker) configure() error {
	props := strings.NewReplacer("{port}", strconv.Itoa(b.port), "{cport}", strconv.Itoa(b.cport), "{dir}", b.dir)
	if err := os.WriteFile(b.path("server.properties"), []byte(props.Replace(serverProperties)), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(b.path("log4j2.properties"), []byte(log4jProperties), 0o644); err != nil {
		return err
	}
	var id [16]byte
	rand.Read(id[:])
	// The id's first character must not be '-' (or the tool takes it for an
	// option, 1 time in 64): below 0x80, the first byte gives one of A-Za-f.
	id[0] &= 0x7f
	cmd := b.java("kafka.tools.StorageTool", "format", "-t", base64.RawURLEncoding.EncodeToString(id[:]),
		"-c", b.path("server.properties"), "--standalone")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("format storage: %v\n%s", err, out)
	}
	return nil
}

func (b *Broker) path(name string) string { return filepath.Join(b.dir, name) }

// java runs a Kafka main class with flags that favour a quick start over
// peak throughput (a test broker handles little data): the C1 compiler
// only and the serial collector.
func (b *Broker) java(args ...string) *exec.Cmd {
	cmd := exec.Command("java", append([]string{
		"-Xms256m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Djava.awt.headless=true",
		"-Dlog4j2.configurationFile=" + b.path("log4j2.properties"),
		"-cp", filepath.Join(b.libs, "*"),
	}, args...)...)
	cmd.Dir = b.dir
	// Its own process group, and killed when the test binary dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// launch starts the broker process and waits until it answers.
func (b *Broker) launch() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	logf, err := os.OpenFile(b.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	logStart, _ := logf.Seek(0, 2)
	cmd := b.java("kafka.Kafka", b.path("server.properties"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start java: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	b.cmd, b.exited = cmd, exited

	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-exited:
			b.cmd = nil
			return fmt.Errorf("broker exited during startup: %s%s", cmd.ProcessState, b.logTail())
		case <-time.After(100 * time.Millisecond):
		}
		if b.started(logStart) && b.answers() {
			return nil
		}
		if time.Now().After(deadline) {
			b.kill()
			return fmt.Errorf("broker did not answer on %s within %s%s", b.Addr(), startTimeout, b.logTail())
		}
	}
}

// started reports whether the log written since offset from says that
// the server has started.
func (b *Broker) started(from int64) bool {
	data, err := os.ReadFile(b.logPath)
	if err != nil || int64(len(data)) < from {
		return false
	}
	return bytes.Contains(data[from:], []byte("Kafka Server started"))
}

func (b *Broker) answers() bool {
	c, err := net.DialTimeout("tcp", b.Addr(), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// stop terminates the broker if it runs and waits for it.
func (b *Broker) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return
	}
	syscall.Kill(-b.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(stopTimeout):
		b.kill()
	}
	b.cmd = nil
}

// kill ends the broker's process group at once. Called with mu held.
func (b *Broker) kill() {
	if b.cmd == nil {
		return
	}
	syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
	<-b.exited
	b.cmd = nil
}

// logTail returns the end of the broker's log, for error messages.
func (b *Broker) logTail() string {
	data, err := os.ReadFile(b.logPath)
	if err != nil {
		return ""
	}
	const max = 4 << 10
	if len(data) > max {
		data = data[len(data)-max:]
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	return "\n--- end of " + b.logPath + ":\n" + string(data)
}
