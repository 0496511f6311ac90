package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Client talks to a ferry daemon. Resource files add its typed methods.
type Client struct {
	http  *http.Client
	dial  func(ctx context.Context) (net.Conn, error)
	base  string // "http://ferry" for unix sockets, "http://host:port" for TCP
	token string
}

// NewClient returns a client for host ("unix:///run/ferry/ferry.sock" or
// "tcp://127.0.0.1:7070"); token is sent as a bearer token when non-empty.
func NewClient(host, token string) (*Client, error) {
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("daemon address %q: %w", host, errdefs.ErrInvalidArgument)
	}
	c := &Client{token: token}
	var d net.Dialer
	switch u.Scheme {
	case "unix":
		path := u.Path
		if path == "" {
			path = u.Opaque
		}
		c.dial = func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "unix", path) }
		c.base = "http://ferry"
	case "tcp", "http":
		addr := u.Host
		c.dial = func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
		c.base = "http://" + addr
	default:
		return nil, fmt.Errorf("daemon address %q: want unix:///path or tcp://host:port: %w", host, errdefs.ErrInvalidArgument)
	}
	c.http = &http.Client{Transport: &http.Transport{
		DialContext:         func(ctx context.Context, _, _ string) (net.Conn, error) { return c.dial(ctx) },
		MaxIdleConnsPerHost: 8,
	}}
	return c, nil
}

// Error is an error reply from the daemon. errors.Is(err, errdefs.ErrX)
// matches the kind named by Code.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the errdefs kind of the error, if known.
func (e *Error) Unwrap() error { return errdefs.FromCode(e.Code) }

func errorCode(err error) string { return errdefs.Code(err) }

// Do sends a request with in (if non-nil) as its JSON body (an io.Reader is
// sent as is) and decodes a JSON
// reply into out (if non-nil).
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.send(ctx, method, path, in, nil)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode reply: %w", method, path, err)
	}
	return nil
}

// Stream sends a request and calls fn for each value of the NDJSON reply. A
// final error value from the server is returned as an *Error.
func (c *Client) Stream(ctx context.Context, method, path string, in any, fn func(json.RawMessage) error) error {
	resp, err := c.send(ctx, method, path, in, nil)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	dec := json.NewDecoder(resp.Body)
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("%s %s: stream: %w", method, path, err)
		}
		var se streamError
		if json.Unmarshal(raw, &se) == nil && se.ErrorBody != nil {
			return &Error{Status: 0, Code: se.ErrorBody.Code, Message: se.ErrorBody.Error}
		}
		if err := fn(raw); err != nil {
			return err
		}
	}
}

// Upgrade sends a request asking to switch to a raw bidirectional stream and
// returns the connection once the daemon answers 101.
func (c *Client) Upgrade(ctx context.Context, method, path string, in any) (net.Conn, error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, c.dialError(err)
	}
	var body []byte
	if in != nil {
		if body, err = json.Marshal(in); err != nil {
			_ = conn.Close()
			return nil, err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", UpgradeProto)
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if err := req.Write(conn); err != nil {
		_ = conn.Close()
		return nil, err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer func() { _ = conn.Close() }()
		defer func() { _ = resp.Body.Close() }()
		return nil, decodeError(resp)
	}
	_ = resp.Body.Close() // a 101 reply has no body; the stream follows on br
	return &bufferedConn{Conn: conn, r: br}, nil
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// CloseWrite half-closes the connection when the transport supports it.
func (b *bufferedConn) CloseWrite() error {
	if cw, ok := b.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *Client) send(ctx context.Context, method, path string, in any, hdr http.Header) (*http.Response, error) {
	var body io.Reader
	switch v := in.(type) {
	case nil:
	case io.Reader: // a raw body, sent as is
		body = v
	default:
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.dialError(err)
	}
	if resp.StatusCode >= 300 {
		defer func() { _ = resp.Body.Close() }()
		return nil, decodeError(resp)
	}
	return resp, nil
}

func (c *Client) dialError(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return fmt.Errorf("cannot reach the ferry daemon (%w); start it with `ferry daemon` or point --host/FERRY_HOST at it: %w", op.Err, errdefs.ErrUnavailable)
	}
	return err
}

func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var eb errorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
		return &Error{Status: resp.StatusCode, Code: eb.Code, Message: eb.Error}
	}
	msg := strings.TrimSpace(string(b))
	if msg == "" {
		msg = resp.Status
	}
	return &Error{Status: resp.StatusCode, Code: "internal", Message: msg}
}
