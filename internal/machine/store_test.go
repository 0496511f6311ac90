package machine

import (
	"encoding/json"
	"net/netip"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/network"
)

// TestRecordsOfEarlierDaemonsLoad reads records written by the daemon
// before records were versioned (captured from a real daemon: a started
// machine with published ports and a stopped one with its exit) and checks
// what they say survives.
func TestRecordsOfEarlierDaemonsLoad(t *testing.T) {
	web := loadFixture(t, "testdata/record-v0-fx-web.json")
	if web.ID != "badd455b66076f" || web.Name != "fx-web" || web.State != types.StateStarted || web.PID == 0 || web.Driver != "qemu" || !web.Emulated {
		t.Errorf("fx-web identity/state: %+v", web)
	}
	c := web.Config
	if c.Image != "busybox:fx" || c.Env["A"] != "1" || c.Hostname != "fxweb" || c.Restart != (types.Restart{Policy: types.RestartOnFailure, MaxRetries: 2}) ||
		len(c.Services) != 2 || c.Services[0].Ports[0] != (types.Port{Port: 18480, HostIP: "127.0.0.1"}) || c.Services[1].Protocol != "udp" {
		t.Errorf("fx-web config: %+v", c)
	}
	if web.ImageRef.Digest == "" || len(web.ImageConfig.Cmd) != 1 || web.StartedAt.IsZero() {
		t.Errorf("fx-web image: %+v %+v", web.ImageRef, web.ImageConfig)
	}
	n := web.Network
	if n == nil || len(n.Endpoints) != 1 || n.Endpoints[0].Tap == "" || n.Endpoints[0].MAC == "" || web.IP() != "10.213.0.2" ||
		n.Endpoints[0].Gateway != netip.MustParseAddr("10.213.0.1") || n.Endpoints[0].IPv4.Bits() != 22 || len(n.Ports) != 2 ||
		n.Ports[0] != (types.PortMapping{Protocol: "tcp", HostPort: 18480, GuestPort: 80}) || len(n.DNS) != 1 {
		t.Errorf("fx-web network (one NIC, before multiple networks): %+v", n)
	}
	if len(web.Events) == 0 || web.Events[0].Type != "started" {
		t.Errorf("fx-web events: %+v", web.Events)
	}
	done := loadFixture(t, "testdata/record-v0-fx-done.json")
	if done.State != types.StateStopped || done.LastExit == nil || done.LastExit.ExitCode != 3 || done.LastExit.ExitedAt.IsZero() || done.Network != nil {
		t.Errorf("fx-done: %+v exit %+v", done, done.LastExit)
	}
	var exitEvent *types.Event
	for i := range done.Events {
		if done.Events[i].Type == "exit" {
			exitEvent = &done.Events[i]
		}
	}
	if exitEvent == nil || exitEvent.Exit == nil || exitEvent.Exit.ExitCode != 3 {
		t.Errorf("fx-done exit event: %+v", done.Events)
	}
	// Written again, it is a versioned record that reads back the same.
	b, err := encodeRecord(done)
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ V int }
	if json.Unmarshal(b, &v); v.V != recordVersion {
		t.Errorf("rewritten record version %d", v.V)
	}
	if again, err := decodeRecord([]byte(done.ID), b); err != nil || !reflect.DeepEqual(again, done) {
		t.Errorf("round trip: %+v, %v", again, err)
	}
	if _, err := decodeRecord([]byte("x"), []byte(`{"v":99,"id":"x"}`)); err == nil {
		t.Error("a record from a newer ferry loaded")
	}
}

// TestRecordWithEndpointsLoads: records written while the machine record
// held the network package's attachment (endpoints) read as they were.
func TestRecordWithEndpointsLoads(t *testing.T) {
	raw := `{"id":"m1","name":"web","app":"default","state":"started","config":{"image":"x"},"version":1,"image_ref":{"ref":"x"},"image_config":{},` +
		`"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z","restarts":0,` +
		`"network":{"machine_id":"m1","endpoints":[{"network_id":"abc","network":"default-net","name":"web","tap":"ft-1","mac":"02:fe:00:00:00:01","ipv4":"10.214.0.2/24","gateway":"10.214.0.1","ipv6":"fd00::2/64","mtu":1500}],` +
		`"ports":[{"protocol":"tcp","host_ip":"127.0.0.1","host_port":8080,"guest_port":80}],"dns":["10.214.0.1"],"search":["default.internal"]}}`
	m, err := decodeRecord([]byte("m1"), []byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	n := m.Network
	if n == nil || len(n.Endpoints) != 1 || n.Endpoints[0].Network != "default-net" || m.IP() != "10.214.0.2" || !n.Endpoints[0].IPv6.IsValid() ||
		n.Ports[0].HostIP != "127.0.0.1" || len(n.Search) != 1 {
		t.Errorf("network %+v", n)
	}
}

func loadFixture(t *testing.T, path string) *types.Machine {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := decodeRecord([]byte(path), b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRecordCarriesEveryField fails when a field is added to the API's
// Machine (or anything in it) and toRecord/fromRecord do not carry it.
func TestRecordCarriesEveryField(t *testing.T) {
	var m types.Machine
	fillDeep(t, reflect.ValueOf(&m).Elem(), "Machine")
	m.Health = nil // the live run's, never recorded (health.go)
	m.Host = ""    // the control plane's, set on its replies only
	back := fromRecord(toRecord(&m))
	if !reflect.DeepEqual(back, &m) {
		t.Errorf("a full machine does not survive its record:\n got %+v\nwant %+v", back, &m)
	}
}

// TestNetworkViewCarriesEveryField fails when network.Attachment gains a
// field that the API's view neither shows nor deliberately leaves out.
func TestNetworkViewCarriesEveryField(t *testing.T) {
	left := map[string]string{
		"MachineID": "the machine it belongs to is the enclosing one",
		"File":      "an open descriptor, meaningless outside the daemon",
	}
	a := &network.Attachment{MachineID: "m", Endpoints: []network.Endpoint{{Tap: "t"}},
		DNS: []string{"1.1.1.1"}, Search: []string{"app.internal"}, NetNS: "ns",
		Ports: []network.Port{{Protocol: "tcp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 1, GuestPort: 2}}}
	rv := reflect.ValueOf(a).Elem()
	for i := range rv.NumField() {
		if name := rv.Type().Field(i).Name; rv.Field(i).IsZero() && left[name] == "" && name != "File" {
			t.Fatalf("test attachment leaves %s zero: set it", name)
		}
	}
	n := networkView(a)
	wv := reflect.ValueOf(n).Elem()
	for i := range rv.NumField() {
		name := rv.Type().Field(i).Name
		if _, ok := left[name]; ok {
			continue
		}
		if f := wv.FieldByName(name); !f.IsValid() || f.IsZero() {
			t.Errorf("network.Attachment.%s is not carried into the API's Network by networkView", name)
		}
	}
	if n.Ports[0] != (types.PortMapping{Protocol: "tcp", HostIP: "127.0.0.1", HostPort: 1, GuestPort: 2}) {
		t.Errorf("port view %+v", n.Ports[0])
	}
	// Every endpoint field but the open TAP reaches the view.
	var e network.Endpoint
	fillDeep(t, reflect.ValueOf(&e).Elem(), "Endpoint")
	v := endpointView(e)
	ev, vv := reflect.ValueOf(e), reflect.ValueOf(v)
	for i := range ev.NumField() {
		name := ev.Type().Field(i).Name
		if name == "File" || name == "MachineID" {
			continue
		}
		if f := vv.FieldByName(name); !f.IsValid() || !reflect.DeepEqual(f.Interface(), ev.Field(i).Interface()) {
			t.Errorf("network.Endpoint.%s is not carried into the API's Endpoint by endpointView", name)
		}
	}
}

// fillDeep sets every field under v to a non-zero value.
func fillDeep(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	switch v.Kind() {
	case reflect.String:
		v.SetString("x-" + path)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(len(path)))
	case reflect.Uint16:
		v.SetUint(7)
	case reflect.Float64:
		v.SetFloat(1.5)
	case reflect.Pointer:
		if v.Type() == reflect.TypeFor[*os.File]() {
			return // an open descriptor: not data
		}
		v.Set(reflect.New(v.Type().Elem()))
		fillDeep(t, v.Elem(), path)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fillDeep(t, v.Index(0), path+"[0]")
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		e := reflect.New(v.Type().Elem()).Elem()
		fillDeep(t, e, path+"[k]")
		v.SetMapIndex(reflect.ValueOf("k"), e)
	case reflect.Struct:
		switch v.Type() {
		case reflect.TypeFor[time.Time]():
			v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)))
			return
		case reflect.TypeFor[netip.Addr]():
			v.Set(reflect.ValueOf(netip.MustParseAddr("10.1.2.3")))
			return
		case reflect.TypeFor[netip.Prefix]():
			v.Set(reflect.ValueOf(netip.MustParsePrefix("10.1.2.3/24")))
			return
		}
		for i := range v.NumField() {
			fillDeep(t, v.Field(i), path+"."+v.Type().Field(i).Name)
		}
	case reflect.Interface:
		if v.Type() == reflect.TypeFor[*os.File]() {
			return
		}
		t.Fatalf("fillDeep: %s is an interface: teach the test", path)
	default:
		t.Fatalf("fillDeep: %s is a %s: teach the test", path, v.Kind())
	}
}
