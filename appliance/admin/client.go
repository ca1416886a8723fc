package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client talks to the admin API of one daemon.
type Client struct {
	addr  string // as given, for error messages
	base  string // URL prefix
	token string
	hc    *http.Client
}

// NewClient returns a client for the daemon at addr: "host:port",
// "http://host:port" or "unix:/path/to/socket". token, when not empty, is
// sent as a bearer token.
func NewClient(addr, token string) (*Client, error) {
	c := &Client{addr: addr, token: token}
	tr := &http.Transport{ResponseHeaderTimeout: 30 * time.Second, DisableCompression: true}
	switch {
	case strings.HasPrefix(addr, "unix:"):
		path := strings.TrimPrefix(addr, "unix:")
		if path == "" {
			return nil, errors.New("admin address unix: needs a socket path")
		}
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
		c.base = "http://localhost"
	case strings.HasPrefix(addr, "http://"):
		c.base = strings.TrimSuffix(addr, "/")
	default:
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("admin address %q: want host:port or unix:/path", addr)
		}
		c.base = "http://" + addr
	}
	c.hc = &http.Client{Transport: tr, Timeout: 60 * time.Second}
	return c, nil
}

// Addr is the address the client was made for.
func (c *Client) Addr() string { return c.addr }

// APIError is an error response from the daemon.
type APIError struct {
	Status int
	ErrorBody
}

func (e *APIError) Error() string {
	msg := e.ErrorBody.Error
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Field != "" && !strings.Contains(msg, e.Field) {
		msg += " (field " + e.Field + ")"
	}
	return msg
}

// UnreachableError is a failure to reach the daemon at all.
type UnreachableError struct {
	Addr string
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the tcpincd admin API at %s: %v", e.Addr, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// do sends one request and decodes a 2xx JSON answer into out.
func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return &UnreachableError{Addr: c.addr, Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return &UnreachableError{Addr: c.addr, Err: err}
	}
	if resp.StatusCode/100 != 2 {
		ae := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(data, &ae.ErrorBody) != nil || ae.ErrorBody.Error == "" {
			ae.ErrorBody = ErrorBody{Error: fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(data)))}
		}
		return ae
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: undecodable answer from %s: %v", method, path, c.addr, err)
	}
	return nil
}

// Health calls /healthz.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var h Health
	return h, c.do(ctx, "GET", "/healthz", nil, &h)
}

// Status calls /api/v1/status.
func (c *Client) Status(ctx context.Context) (StatusDoc, error) {
	var s StatusDoc
	return s, c.do(ctx, "GET", "/api/v1/status", nil, &s)
}

// FlowQuery holds the filters of /api/v1/flows; zero values do not filter.
type FlowQuery struct {
	Encrypted *bool
	State     string
	Address   string // address or prefix
	Port      uint16
	Limit     int
	Cursor    string
}

func (q *FlowQuery) values() url.Values {
	v := url.Values{}
	if q.Encrypted != nil {
		v.Set("encrypted", strconv.FormatBool(*q.Encrypted))
	}
	if q.State != "" {
		v.Set("state", q.State)
	}
	if q.Address != "" {
		v.Set("address", q.Address)
	}
	if q.Port != 0 {
		v.Set("port", strconv.Itoa(int(q.Port)))
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Cursor != "" {
		v.Set("cursor", q.Cursor)
	}
	return v
}

// Flows fetches one page of /api/v1/flows.
func (c *Client) Flows(ctx context.Context, q FlowQuery) (FlowsPage, error) {
	var p FlowsPage
	path := "/api/v1/flows"
	if v := q.values().Encode(); v != "" {
		path += "?" + v
	}
	return p, c.do(ctx, "GET", path, nil, &p)
}

// AllFlows fetches every page of /api/v1/flows, in flow ID order.
func (c *Client) AllFlows(ctx context.Context, q FlowQuery) ([]FlowDoc, error) {
	if q.Limit == 0 {
		q.Limit = MaxFlowLimit
	}
	flows := []FlowDoc{}
	for {
		p, err := c.Flows(ctx, q)
		if err != nil {
			return nil, err
		}
		flows = append(flows, p.Flows...)
		if p.NextCursor == "" {
			return flows, nil
		}
		q.Cursor = p.NextCursor
	}
}

// Flow calls /api/v1/flows/{id}.
func (c *Client) Flow(ctx context.Context, id uint64) (FlowDoc, error) {
	var f FlowDoc
	return f, c.do(ctx, "GET", "/api/v1/flows/"+strconv.FormatUint(id, 10), nil, &f)
}

// Session calls /api/v1/sessions for the connection src -> dst.
func (c *Client) Session(ctx context.Context, src, dst netip.AddrPort) (SessionDoc, error) {
	v := url.Values{}
	v.Set("src", src.Addr().String())
	v.Set("sport", strconv.Itoa(int(src.Port())))
	v.Set("dst", dst.Addr().String())
	v.Set("dport", strconv.Itoa(int(dst.Port())))
	var s SessionDoc
	return s, c.do(ctx, "GET", "/api/v1/sessions?"+v.Encode(), nil, &s)
}

// Config calls GET /api/v1/config.
func (c *Client) Config(ctx context.Context) (Config, error) {
	var cfg Config
	return cfg, c.do(ctx, "GET", "/api/v1/config", nil, &cfg)
}

// PutConfig sends a config document as is (the server decodes it
// strictly, over the running config).
func (c *Client) PutConfig(ctx context.Context, doc []byte) (ApplyResult, error) {
	var r ApplyResult
	return r, c.do(ctx, "PUT", "/api/v1/config", doc, &r)
}

// FlushCache flushes the resumption cache for the far side addr, or for
// all far sides when addr is empty.
func (c *Client) FlushCache(ctx context.Context, addr string) (FlushResult, error) {
	body, _ := json.Marshal(FlushRequest{Address: addr})
	var r FlushResult
	return r, c.do(ctx, "POST", "/api/v1/cache/flush", body, &r)
}
