package main

import (
	"context"
	"time"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/lease"
)

// holder is one lease on a volume, with what its holder said when asked.
type holder struct {
	File     string        `json:"file"`
	DB       string        `json:"db,omitempty"`
	Lease    *lease.Lease  `json:"lease,omitempty"`
	Invalid  string        `json:"invalid,omitempty"` // why the lease file is refused
	Stale    string        `json:"stale,omitempty"`   // why its holder is gone
	Live     *lease.Status `json:"live,omitempty"`    // the holder's answer to status
	NoAnswer string        `json:"no_answer,omitempty"`
	Orphaned string        `json:"-"` // why a lease with a running pid holds nothing (see orphaned)
}

// blocks reports whether the holder keeps the volume from being removed:
// a valid lease whose holder is alive.
func (h holder) blocks() bool { return h.Lease != nil && h.Invalid == "" && h.Stale == "" }

// volume is what status, check and eject know of PATH's volume.
type volume struct {
	Probe   device.Probe `json:"volume"`
	Holders []holder     `json:"holders"`
}

// gather finds the leases on PATH's volume and asks live holders for
// their status.
func gather(path string, timeout time.Duration) (volume, error) {
	var v volume
	path, err := realPath(path)
	if err != nil {
		return v, err
	}
	p, err := device.ProbePath(path)
	if err != nil {
		return v, err
	}
	v.Probe = p
	_, found, err := lease.Find(path)
	if err != nil {
		return v, err
	}
	for _, f := range found {
		h := holder{File: f.File}
		switch {
		case f.Err != nil:
			h.Invalid = f.Err.Error()
		default:
			l := f.Lease
			h.Lease, h.DB = &l, f.DBPath()
			h.Stale = f.Why
			if f.Stale && h.Stale == "" {
				h.Stale = "holder gone"
			}
		}
		if h.blocks() {
			h.Live, h.NoAnswer = ask(h.Lease.Endpoint, timeout)
			if h.Live == nil {
				h.Orphaned = orphaned(h)
				h.Stale = h.Orphaned
			}
		}
		v.Holders = append(v.Holders, h)
	}
	return v, nil
}

func ask(endpoint string, timeout time.Duration) (*lease.Status, string) {
	if endpoint == "" {
		return nil, "the holder has no control endpoint"
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	resp, err := lease.Ask(ctx, endpoint, lease.Request{Op: "status"})
	switch {
	case err != nil:
		return nil, err.Error()
	case !resp.OK:
		return nil, resp.Error
	}
	return resp.Status, ""
}
