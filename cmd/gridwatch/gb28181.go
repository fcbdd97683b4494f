package main

import (
	"context"
	"fmt"
	"net"
	"time"

	"gridwatch/camera/camsim/gbsim"
	"gridwatch/camera/gb28181"
	"gridwatch/camera/onvifcam"
	"gridwatch/camera/pull"
	"gridwatch/internal/domain"
)

// The demo's simulated GB/T 28181 NVR: its ID, its password and its
// channels' IDs (type 131, cameras) under the demo district's civil code.
const (
	demoNVRID       = "32010600001180000001"
	demoNVRPassword = "demo-nvr"
	demoNVRChannels = 4
)

// newGB prepares the GB/T 28181 signalling when it is configured (the demo
// turns it on, on a free loopback port): its store, its SIP server bound
// (so the video can ask it for sources before it serves), alarms filed as
// incidents.
func (m *Main) newGB() error {
	cfg := m.Config
	if cfg.GB28181Addr == "" && m.DemoNVR && m.Camsim && !m.MigrateOnly {
		cfg.GB28181Addr = "127.0.0.1:0"
	}
	if cfg.GB28181Addr == "" || m.MigrateOnly {
		return nil
	}
	m.gbStore = gb28181.NewStore(m.pool, m.domain.Cameras, m.node.ID())
	alarms := &gb28181.Alarms{Store: m.gbStore, Incidents: m.domain.Incidents, Category: cfg.GB28181AlarmCategory,
		Logger: m.Logger.With("component", "gb28181")}
	loc, err := time.LoadLocation(cfg.GB28181TimeZone)
	if err != nil {
		return err
	}
	srv, err := gb28181.New(gb28181.Config{
		Addr: cfg.GB28181Addr, ID: cfg.GB28181ID, Realm: cfg.GB28181Realm, Password: cfg.GB28181Password, Location: loc,
		MediaIP: cfg.GB28181MediaIP, MediaTransport: cfg.GB28181Transport,
		Keepalive: cfg.GB28181Keepalive, MissedKeepalives: cfg.GB28181MissedKeepalives,
		Store: m.gbStore, Logger: m.Logger, OnAlarm: alarms.Handle,
	})
	if err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	m.gb = srv
	m.gbPlaybacks = &gb28181.Playbacks{Server: srv}
	return nil
}

// gbSources is the video's source of a GB/T 28181 channel's URL.
func (m *Main) gbSources(url string) (pull.Source, bool) {
	if m.gb == nil {
		return nil, false
	}
	return m.gb.Source(url)
}

// runGB serves the GB/T 28181 signalling until shutdown, and in the demo
// registers the simulated NVR with it.
func (m *Main) runGB() error {
	if m.gb == nil {
		return nil
	}
	m.gbFetches = &gb28181.Fetches{Playbacks: m.gbPlaybacks, Footage: m.domain.Footage, Record: m.recorder.Record,
		Logger: m.Logger.With("component", "gb28181")}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	prev := m.stopVideo
	m.stopVideo = func() {
		stop()
		<-done
		prev()
	}
	pbDone := make(chan struct{})
	go func() {
		defer close(pbDone)
		fxDone := make(chan struct{})
		go func() {
			defer close(fxDone)
			_ = m.gbFetches.Run(ctx)
		}()
		_ = m.gbPlaybacks.Run(ctx)
		<-fxDone
	}()
	go func() {
		defer close(done)
		if err := m.gb.Run(ctx); err != nil {
			m.Logger.Error("GB/T 28181 stopped", "err", err)
		}
		<-pbDone
	}()
	m.Logger.Info("GB/T 28181 platform listening", "addr", m.gb.Addr(), "id", m.Config.GB28181ID)
	if !m.Camsim || !m.DemoNVR {
		return nil
	}
	return m.startDemoNVR(ctx)
}

// startDemoNVR registers the demo's simulated NVR: four channels in the
// demo city (one a PTZ dome, one with sound) and a fifth that reports no
// position, which the devices page offers to place.
func (m *Main) startDemoNVR(ctx context.Context) error {
	places, err := domain.DemoNVRPlaces(demoNVRChannels)
	if err != nil {
		return err
	}
	if _, err := m.gbStore.Configure(ctx, demoNVRID, gb28181.DeviceSpec{Password: ptr(demoNVRPassword)}); err != nil {
		return err
	}
	var chans []gbsim.Channel
	var recs []gbsim.Record
	now := time.Now().Truncate(time.Hour)
	for i, p := range places {
		id := fmt.Sprintf("320106000013100000%02d", i+1)
		chans = append(chans, gbsim.Channel{ID: id, Name: p.Name + " 视频监控点", Lon: p.Lon, Lat: p.Lat, PTZ: i == 0})
		// The NVR holds the last day in hourly files, and goes on
		// recording: what it holds can be listed, played and fetched.
		for h := 24; h > 0; h-- {
			recs = append(recs, gbsim.Record{Channel: id, Start: now.Add(-time.Duration(h) * time.Hour), End: now.Add(-time.Duration(h-1) * time.Hour), Type: "time"})
		}
		recs = append(recs, gbsim.Record{Channel: id, Start: now, End: now.Add(30 * 24 * time.Hour), Type: "time"})
	}
	chans = append(chans, gbsim.Channel{ID: fmt.Sprintf("320106000013100000%02d", len(places)+1), Name: "未标注位置的通道", NoPosition: true})
	host, _, _ := net.SplitHostPort(m.gb.Addr())
	dev, err := gbsim.Start(ctx, gbsim.Config{Server: m.gb.Addr(), ServerID: m.Config.GB28181ID, Realm: m.Config.GB28181Realm,
		DeviceID: demoNVRID, Password: demoNVRPassword, Name: "演示 NVR", Channels: chans, Records: recs, Audio: true,
		Keepalive: m.Config.GB28181Keepalive, LocalIP: host, Logger: m.Logger.With("component", "gbsim")})
	if err != nil {
		return fmt.Errorf("demo NVR: %w", err)
	}
	prev := m.stopVideo
	m.stopVideo = func() {
		_ = dev.Close()
		prev()
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// ptzDriver steers the GB/T 28181 domes (nil: GB/T 28181 is off).
func (m *Main) ptzDriver() onvifcam.Driver {
	if m.gb == nil {
		return nil
	}
	return &gb28181.PTZDriver{Server: m.gb, MoveTimeout: 2 * time.Second}
}
