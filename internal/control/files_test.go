package control

import (
	"testing"

	"flowlog/internal/desired"
)

// TestFileOutputSettings: output type file keeps its settings in the
// control plane, fills AWS's defaults, changes the given ones only, gives
// the data plane the flow log's region, and drops them with the output
// type.
func TestFileOutputSettings(t *testing.T) {
	x := newTenancy(t, "")
	x.grant(x.a, GrantExporter, "192.0.2.0/24")
	gw, err := x.exporter(x.a, "192.0.2.9")
	if err != nil {
		t.Fatal(err)
	}
	f, _, err := x.svc.CreateFlowLog(x.ctx, x.a, FlowLogInput{Name: ptr("fl"), OutputType: ptr(OutputFile), Region: ptr("lab-1"),
		File: &FileOutputInput{OutputDir: ptr("a/./b/")}, Targets: []Target{{GatewayID: gw.ID}}})
	if err != nil {
		t.Fatal(err)
	}
	want := desired.FileOutput{OutputDir: "a/b", LogFormat: "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} " +
		"${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status}", FileFormat: desired.FilePlainText}
	if f.File == nil || *f.File != want {
		t.Fatalf("created with %+v, want %+v", f.File, want)
	}
	f, err = x.svc.UpdateFlowLog(x.ctx, x.a, f.ID, FlowLogInput{File: &FileOutputInput{FileFormat: ptr(desired.FileParquet),
		PerHourPartition: ptr(true)}})
	if err != nil {
		t.Fatal(err)
	}
	want.FileFormat, want.PerHourPartition = desired.FileParquet, true
	if got, err := x.svc.GetFlowLog(x.ctx, x.a, f.ID); err != nil || got.File == nil || *got.File != want {
		t.Fatalf("after the update: %+v, %v; want %+v", got.File, err, want)
	}
	st := x.snapshot()
	want.Region = "lab-1"
	if len(st.FlowLogs) != 1 || st.FlowLogs[0].File == nil || *st.FlowLogs[0].File != want {
		t.Fatalf("desired state: %+v", st.FlowLogs)
	}

	if _, err := x.svc.UpdateFlowLog(x.ctx, x.a, f.ID, FlowLogInput{File: &FileOutputInput{OutputDir: ptr("../up")}}); err == nil {
		t.Error("an output directory outside was taken")
	}
	f, err = x.svc.UpdateFlowLog(x.ctx, x.a, f.ID, FlowLogInput{OutputType: ptr(OutputNetflow), NetflowServerIP: ptr("127.0.0.1")})
	if err != nil || f.File != nil {
		t.Fatalf("output type netflow: %+v, %v", f.File, err)
	}
	if st := x.snapshot(); st.FlowLogs[0].File != nil {
		t.Errorf("desired state of a netflow flow log: %+v", st.FlowLogs[0].File)
	}
}
