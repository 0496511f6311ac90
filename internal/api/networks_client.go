package api

import (
	"context"
	"net/url"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/network"
)

func networkPath(ref, verb string) string {
	p := "/v1/networks"
	if ref != "" {
		p += "/" + url.PathEscape(ref)
	}
	if verb != "" {
		p += "/" + verb
	}
	return p
}

func listQuery(o network.ListOptions) string {
	q := url.Values{}
	for k, v := range o.Labels {
		if v != "" {
			k += "=" + v
		}
		q.Add("label", k)
	}
	if o.Name != "" {
		q.Set("name", o.Name)
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// CreateNetwork creates a network.
func (c *Client) CreateNetwork(ctx context.Context, req network.CreateRequest) (*network.Network, error) {
	var n network.Network
	return &n, c.Do(ctx, "POST", networkPath("", ""), req, &n)
}

// ListNetworks lists the networks matching o.
func (c *Client) ListNetworks(ctx context.Context, o network.ListOptions) ([]*network.Network, error) {
	var out []*network.Network
	return out, c.Do(ctx, "GET", networkPath("", "")+listQuery(o), nil, &out)
}

// InspectNetwork returns a network (name, ID or ID prefix) and its endpoints.
func (c *Client) InspectNetwork(ctx context.Context, ref string) (*network.Info, error) {
	var info network.Info
	return &info, c.Do(ctx, "GET", networkPath(ref, ""), nil, &info)
}

// RemoveNetwork deletes a network no machine uses.
func (c *Client) RemoveNetwork(ctx context.Context, ref string) error {
	return c.Do(ctx, "DELETE", networkPath(ref, ""), nil, nil)
}

// PruneNetworks removes the unused networks matching o.
func (c *Client) PruneNetworks(ctx context.Context, o network.ListOptions) ([]string, error) {
	var r PruneReply
	return r.Removed, c.Do(ctx, "POST", networkPath("prune", "")+listQuery(o), nil, &r)
}

// ConnectNetwork puts a stopped machine on a network.
func (c *Client) ConnectNetwork(ctx context.Context, ref string, req ConnectRequest) (*types.Machine, error) {
	var m types.Machine
	return &m, c.Do(ctx, "POST", networkPath(ref, "connect"), req, &m)
}

// DisconnectNetwork takes a stopped machine off a network.
func (c *Client) DisconnectNetwork(ctx context.Context, ref string, req ConnectRequest) (*types.Machine, error) {
	var m types.Machine
	return &m, c.Do(ctx, "POST", networkPath(ref, "disconnect"), req, &m)
}
