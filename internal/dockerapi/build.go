package dockerapi

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/moby/moby/api/types/jsonstream"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/build"
)

// POST /build: the classic builder's request (a tar context, options in the
// query), run by ferry's builder. What it reports is written as the
// classic builder's stream: "Step N/M : …", the RUN output, the image ID
// (aux) and "Successfully built/tagged".
func (s *Server) build(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Builder == nil {
		return errNotImplemented{"docker build: this daemon runs without ferry's builder"}
	}
	req, err := buildRequest(r)
	if err != nil {
		return err
	}
	body, err := contextReader(r.Body)
	if err != nil {
		return err
	}
	_ = http.NewResponseController(w).EnableFullDuplex() // events go out while the context comes in
	var ps *progressStream
	start := func() *progressStream {
		if ps == nil {
			ps = newProgressStream(w)
		}
		return ps
	}
	quiet := boolParam(r, "q")
	emit := func(ev build.Event) {
		if quiet {
			return
		}
		for _, line := range classicLines(ev) {
			start().send(jsonstream.Message{Stream: line})
		}
	}
	res, err := s.cfg.Builder.Build(r.Context(), req, body, emit)
	if err != nil {
		if ps == nil {
			return err
		}
		ps.fail(err)
		return nil
	}
	p := start()
	aux, _ := json.Marshal(map[string]string{"ID": res.ID.String()})
	raw := json.RawMessage(aux)
	p.send(jsonstream.Message{Aux: &raw})
	if quiet {
		p.send(jsonstream.Message{Stream: res.ID.String() + "\n"})
		return nil
	}
	p.send(jsonstream.Message{Stream: "Successfully built " + shortDigest(res.ID.Hex) + "\n"})
	for _, t := range res.Tags {
		p.send(jsonstream.Message{Stream: "Successfully tagged " + familiar(t) + "\n"})
	}
	return nil
}

// classicLines is what the classic builder prints for one event.
func classicLines(ev build.Event) []string {
	var out []string
	if st := ev.Step; st != nil {
		switch st.State {
		case build.StepRunning:
			out = append(out, fmt.Sprintf("Step %d/%d : %s\n", st.Index, st.Total, st.Text))
		case build.StepCached:
			out = append(out, fmt.Sprintf("Step %d/%d : %s\n", st.Index, st.Total, st.Text), " ---> Using cache\n")
		case build.StepDone:
			out = append(out, fmt.Sprintf(" ---> done in %.1fs\n", st.Seconds))
		}
	}
	if l := ev.Log; l != nil {
		out = append(out, l.Data)
	}
	if ev.Message != "" {
		out = append(out, ev.Message+"\n")
	}
	if ev.Warning != "" {
		out = append(out, "[WARNING]: "+ev.Warning+"\n")
	}
	return out
}

// buildRequest reads the classic builder's query parameters.
func buildRequest(r *http.Request) (api.BuildRequest, error) {
	q := r.URL.Query()
	req := api.BuildRequest{DockerfilePath: q.Get("dockerfile"), Tags: q["t"], Target: q.Get("target"),
		NoCache: boolParam(r, "nocache"), Pull: boolParam(r, "pull"), Platform: q.Get("platform")}
	if strings.HasPrefix(req.DockerfilePath, "http://") || strings.HasPrefix(req.DockerfilePath, "https://") || q.Get("remote") != "" {
		return req, invalid("docker build from a URL or git remote: ferry builds from the context sent; clone it and build the directory")
	}
	switch n := q.Get("networkmode"); n {
	case "", "default", "bridge":
	case "none":
		req.Network = "none"
	default:
		return req, invalid("docker build --network %s: RUN steps run in the builder's micro-VM on ferry's default network, or none", n)
	}
	for _, o := range []string{"cpusetcpus", "cgroupparent", "isolation", "extrahosts", "squash"} {
		if v := q.Get(o); v != "" && v != "0" && v != "false" {
			return req, invalid("docker build option %s: not applied by ferry's builder", o)
		}
	}
	if v := q.Get("buildargs"); v != "" {
		var args map[string]*string
		if err := json.Unmarshal([]byte(v), &args); err != nil {
			return req, invalid("buildargs: %v", err)
		}
		req.BuildArgs = map[string]string{}
		for k, p := range args {
			if p != nil {
				req.BuildArgs[k] = *p
			}
		}
	}
	if v := q.Get("labels"); v != "" {
		if err := json.Unmarshal([]byte(v), &req.Labels); err != nil {
			return req, invalid("labels: %v", err)
		}
	}
	return req, nil
}

// contextReader undoes the CLI's --compress (gzip) when the context is
// compressed.
func contextReader(body io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(body, 64<<10)
	magic, _ := br.Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, invalid("build context: %v", err)
		}
		return zr, nil
	}
	return br, nil
}
