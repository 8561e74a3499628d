package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"

	"flowlog/internal/client"
	"flowlog/internal/store"
	"flowlog/internal/store/query"
)

func init() { remoteQuerier = newRemoteQuerier }

// serverQuerier asks a flowlog server's query API, with the caller's key.
// group, if set, narrows name resolution to one log group (name or id).
type serverQuerier struct {
	c     *client.Client
	group string
}

func newRemoteQuerier(_ context.Context, t streamTarget) (querier, error) {
	id, secret, err := accessKey()
	if err != nil {
		return nil, err
	}
	c, err := newClient(t.server, id, secret, os.Getenv("FLOWLOG_CA_FILE"))
	if err != nil {
		return nil, err
	}
	return &serverQuerier{c, t.group}, nil
}

func (s *serverQuerier) Close() error { return nil }

// Query sends q to the stream, named by id (ls-…) or by name.
func (s *serverQuerier) Query(ctx context.Context, id store.StreamID, q query.Request) (*query.Response, error) {
	sid, err := s.resolve(ctx, id.Stream)
	if err != nil {
		return nil, err
	}
	var resp query.Response
	if err := s.c.JSON(ctx, "POST", "/v1/log-streams/"+url.PathEscape(sid)+"/query", nil, q, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// resolve turns a log stream name into its id, searching every log group.
func (s *serverQuerier) resolve(ctx context.Context, nameOrID string) (string, error) {
	if strings.HasPrefix(nameOrID, "ls-") {
		return nameOrID, nil
	}
	var groups struct {
		LogGroups []struct{ ID, Name string } `json:"log_groups"`
	}
	if err := s.c.JSON(ctx, "GET", "/v1/log-groups", nil, nil, &groups); err != nil {
		return "", err
	}
	var found []string
	for _, g := range groups.LogGroups {
		if s.group != "" && s.group != g.ID && s.group != g.Name {
			continue
		}
		var streams struct {
			LogStreams []struct{ ID, Name string } `json:"log_streams"`
		}
		if err := s.c.JSON(ctx, "GET", "/v1/log-groups/"+url.PathEscape(g.ID)+"/log-streams", nil, nil, &streams); err != nil {
			return "", err
		}
		for _, ls := range streams.LogStreams {
			if ls.Name == nameOrID {
				found = append(found, ls.ID)
			}
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no log stream named %q", nameOrID)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%d log streams are named %q; give --log-group or its id (%s)", len(found), nameOrID, strings.Join(found, ", "))
}
