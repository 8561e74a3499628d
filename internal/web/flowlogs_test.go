package web_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"flowlog/internal/testutil"
)

// TestFlowLogEdit: a flow log's settings and gateways are changed on the
// Flow logs page; the API reports what the page shows, and the server's
// refusals are shown as it words them.
func TestFlowLogEdit(t *testing.T) {
	c := newConsole(t, "FLOWLOG_FILE_DIR="+t.TempDir())
	tab := c.tab
	gw, stream := demoGateway(t, c.api, "edited")
	id := must(t, c.api, "/v1/flow-logs", map[string]any{"name": "edited", "output_type": "sls", "log_stream_id": stream,
		"targets": []any{map[string]any{"gateway_id": gw}}})
	flowLog := func() map[string]any {
		t.Helper()
		st, fl := testutil.Call(t, c.api, "GET", "/v1/flow-logs/"+id, nil)
		if st != 200 {
			t.Fatalf("GET the flow log: %d %v", st, fl)
		}
		return fl
	}
	form := `[data-test=flow-log-edit][data-id="` + id + `"] `
	edit := func() {
		t.Helper()
		do(t, tab, chromedp.Click(chromedp.CSS(`tr[data-id="`+id+`"] [data-test=edit]`)))
		poll[bool](t, tab, `!!document.querySelector('`+form+`[data-test=save]') && !document.querySelector('`+form+`[data-test=save]').disabled`)
	}
	do(t, tab, chromedp.Navigate(c.srv.URL+"/flow-logs"))
	poll[bool](t, tab, `!!document.querySelector('tr[data-id="`+id+`"]')`)
	eval[chromedp.Void](t, tab, `window.notReloaded = true`)

	t.Run("Aging", func(t *testing.T) {
		edit()
		if v := eval[string](t, tab, `document.querySelector('`+form+`[name=active_aging]').value`); v != fmt.Sprint(flowLog()["active_aging"]) {
			t.Errorf("the form opens with active aging %q, the API says %v", v, flowLog()["active_aging"])
		}
		setFields(t, tab, form, map[string]string{"active_aging": "900", "inactive_aging": "30"})
		do(t, tab, chromedp.Click(chromedp.CSS(form+`[data-test=save]`)))
		poll[bool](t, tab, flowLogCell(id, "aging")+` === '900 / 30 s'`)
		if fl := flowLog(); fl["active_aging"] != float64(900) || fl["inactive_aging"] != float64(30) || fl["log_stream_id"] != stream {
			t.Errorf("aging set to 900/30 in the console, the API says %v", fl)
		}
	})

	t.Run("Output", func(t *testing.T) {
		edit()
		setFields(t, tab, form, map[string]string{"output_type": "all"})
		poll[bool](t, tab, `!!document.querySelector('`+form+`[name=netflow_server_ip]')`)
		setFields(t, tab, form, map[string]string{"netflow_server_ip": "192.0.2.10", "netflow_server_port": "2055", "netflow_version": "V5"})
		do(t, tab, chromedp.Click(chromedp.CSS(form+`[data-test=save]`)))
		poll[bool](t, tab, flowLogCell(id, "output")+`.startsWith('all ')`)
		fl := flowLog()
		if fl["output_type"] != "all" || fl["netflow_server_ip"] != "192.0.2.10" || fl["netflow_server_port"] != float64(2055) ||
			fl["netflow_version"] != "V5" || fl["log_stream_id"] != stream || fl["active_aging"] != float64(900) {
			t.Errorf("output set to all with a V5 collector, the API says %v", fl)
		}
		if out := eval[string](t, tab, flowLogCell(id, "output")); !strings.Contains(out, "192.0.2.10:2055") || !strings.Contains(out, stream) {
			t.Errorf("the row's output: %q", out)
		}
	})

	t.Run("FileOutput", func(t *testing.T) {
		edit()
		setFields(t, tab, form, map[string]string{"output_type": "file"})
		poll[bool](t, tab, `!!document.querySelector('`+form+`[name=output_dir]') && !document.querySelector('`+form+`[name=log_stream_id]')`)
		setFields(t, tab, form, map[string]string{"output_dir": "vpc", "file_format": "parquet"})
		do(t, tab, chromedp.Click(chromedp.CSS(form+`[data-test=save]`)))
		poll[bool](t, tab, flowLogCell(id, "output")+` === 'file vpc'`)
		file := func() map[string]any {
			fl := flowLog()
			f, _ := fl["file"].(map[string]any)
			if fl["output_type"] != "file" || f == nil {
				t.Fatalf("the API says %v", fl)
			}
			return f
		}
		if f := file(); f["output_dir"] != "vpc" || f["file_format"] != "parquet" || f["per_hour_partition"] != false {
			t.Errorf("file output set in the console, the API says %v", f)
		}
		// The form opens with the settings; one changed is the one sent.
		edit()
		if v := eval[string](t, tab, `document.querySelector('`+form+`[name=output_dir]').value + ' ' + document.querySelector('`+form+`[name=file_format]').value`); v != "vpc parquet" {
			t.Errorf("the form opens with %q", v)
		}
		do(t, tab, chromedp.Click(chromedp.CSS(form+`[name=per_hour_partition]`)))
		do(t, tab, chromedp.Click(chromedp.CSS(form+`[data-test=save]`)))
		poll[bool](t, tab, `!document.querySelector('`+form+`[data-test=save]')`)
		if f := file(); f["output_dir"] != "vpc" || f["file_format"] != "parquet" || f["per_hour_partition"] != true {
			t.Errorf("hourly partitions set in the console, the API says %v", f)
		}
	})

	t.Run("DisassociateAssociate", func(t *testing.T) {
		edit()
		target := form + `[data-test=target][data-gateway="` + gw + `"] `
		do(t, tab, chromedp.Click(chromedp.CSS(target+`[data-test=disassociate]`)))
		poll[bool](t, tab, flowLogCell(id, "targets")+` === ''`)
		if ts, _ := flowLog()["targets"].([]any); len(ts) != 0 {
			t.Errorf("disassociated in the console, the API lists targets %v", ts)
		}
		poll[bool](t, tab, `!!document.querySelector('`+target+`[data-test=associate]:not([data-attachment])')`)
		screenshot(t, tab, "flow-log-disassociated")
		do(t, tab, chromedp.Click(chromedp.CSS(target+`[data-test=associate]:not([data-attachment])`)))
		poll[bool](t, tab, flowLogCell(id, "targets")+` === '`+gw+`'`)
		ts, _ := flowLog()["targets"].([]any)
		if len(ts) != 1 || ts[0].(map[string]any)["gateway_id"] != gw {
			t.Errorf("associated again in the console, the API lists targets %v", ts)
		}
		poll[bool](t, tab, `!!document.querySelector('`+target+`[data-test=disassociate]')`)
	})

	t.Run("InvalidValueShowsServerMessage", func(t *testing.T) {
		setFields(t, tab, form, map[string]string{"active_aging": "5"})
		do(t, tab, chromedp.Click(chromedp.CSS(form+`[data-test=save]`)))
		msg := poll[string](t, tab, `document.querySelector('`+form+`[data-test=form-error]')?.textContent ?? ''`)
		st, want := testutil.Call(t, c.api, "PATCH", "/v1/flow-logs/"+id, map[string]any{"active_aging": 5})
		if st != 400 || !strings.Contains(msg, want["code"].(string)) || !strings.Contains(msg, want["message"].(string)) {
			t.Errorf("form error %q, the API says %d %v", msg, st, want)
		}
		if fl := flowLog(); fl["active_aging"] != float64(900) {
			t.Errorf("a refused change changed active aging to %v", fl["active_aging"])
		}
		if a := eval[string](t, tab, flowLogCell(id, "aging")); a != "900 / 30 s" {
			t.Errorf("after a refused change the row shows aging %q", a)
		}
		screenshot(t, tab, "flow-log-edit")
	})

	if !eval[bool](t, tab, `window.notReloaded === true`) {
		t.Error("the page reloaded")
	}
}
