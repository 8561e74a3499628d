package control

import (
	"context"
	"errors"
	"testing"
)

// TestFindLogStreams resolves names as flowlog query --data-dir does: by
// name or id, narrowed by log group (name or id) and account, across the
// accounts of a real control database.
func TestFindLogStreams(t *testing.T) {
	dir := t.TempDir()
	svc, err := New(Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	ctx := context.Background()
	boot, err := svc.EnsureBootstrap(ctx, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	x := &tenancy{t: t, ctx: ctx, svc: svc, boot: boot.Key.AccountID}
	for _, dst := range []*string{&x.a, &x.b} {
		k, err := svc.CreateAccount(ctx, x.boot)
		if err != nil {
			t.Fatal(err)
		}
		*dst = k.AccountID
	}
	stream := func(account, group string) LogStream {
		g, err := x.svc.CreateLogGroup(x.ctx, account, ptr(group))
		if err != nil {
			t.Fatal(err)
		}
		ls, err := x.svc.CreateLogStream(x.ctx, account, g.ID, ptr("flows"), nil)
		if err != nil {
			t.Fatal(err)
		}
		return ls
	}
	la, lb := stream(x.a, "lab"), stream(x.b, "lab")
	for _, c := range []struct {
		f    StreamFilter
		want []string
	}{
		{StreamFilter{Stream: "flows"}, []string{la.ID, lb.ID}}, // ambiguous across accounts
		{StreamFilter{Stream: "flows", Account: x.b}, []string{lb.ID}},
		{StreamFilter{Stream: la.ID}, []string{la.ID}},
		{StreamFilter{Stream: "flows", Group: la.LogGroupID}, []string{la.ID}},
		{StreamFilter{Stream: "flows", Group: "nope"}, nil},
		{StreamFilter{Stream: "other"}, nil},
	} {
		refs, err := FindLogStreams(x.ctx, dir, c.f)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, r := range refs {
			got[r.ID] = true
			if r.Name != "flows" || r.GroupName != "lab" {
				t.Errorf("%+v: %+v", c.f, r)
			}
		}
		if len(got) != len(c.want) {
			t.Errorf("%+v: %v, want %v", c.f, refs, c.want)
		}
		for _, id := range c.want {
			if !got[id] {
				t.Errorf("%+v: %v, want %v", c.f, refs, c.want)
			}
		}
	}
	if _, err := FindLogStreams(x.ctx, t.TempDir(), StreamFilter{Stream: "flows"}); !errors.Is(err, ErrNoControlState) {
		t.Errorf("empty dir: %v, want ErrNoControlState", err)
	}
}
