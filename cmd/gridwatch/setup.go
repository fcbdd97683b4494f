package main

import (
	"context"
	"fmt"
	"log/slog"

	"gridwatch/auth"
	"gridwatch/geo"
)

// DemoAccounts are the demo users, one per role; their passwords are in the
// README, for local use only.
func DemoAccounts() []auth.DemoAccount {
	return []auth.DemoAccount{
		{Username: "demo-admin", Password: "gridwatch-admin", DisplayName: "演示管理员", Role: auth.RoleAdmin},
		{Username: "demo-commander", Password: "gridwatch-commander", DisplayName: "指挥中心值班员", Role: auth.RoleCommander},
		{Username: "demo-operator", Password: "gridwatch-operator", DisplayName: "视频操作员", Role: auth.RoleOperator},
		{Username: "demo-gis", Password: "gridwatch-gis", DisplayName: "地理信息编辑", Role: auth.RoleGISEditor},
		{Username: "demo-leader", Password: "gridwatch-leader", DisplayName: "经八路第一社区网格长", Role: auth.RoleGridLeader, GridCodes: []string{"410105001001"}},
	}
}

// seedDemo imports the demo city unless its district is already stored, and
// creates the demo accounts that are missing.
func seedDemo(ctx context.Context, store *geo.Store, accounts *auth.Service, log *slog.Logger) error {
	if err := seedDemoCity(ctx, store, log); err != nil {
		return err
	}
	return accounts.SeedDemo(ctx, DemoAccounts())
}

func seedDemoCity(ctx context.Context, store *geo.Store, log *slog.Logger) error {
	features, err := geo.ParseFeatureCollection(geo.DemoCity(), geo.ParseOptions{})
	if err != nil {
		return fmt.Errorf("demo city: %w", err)
	}
	existing, _, err := store.List(ctx, geo.Filter{Level: geo.LevelDistrict, Limit: 1000})
	if err != nil {
		return err
	}
	for _, g := range existing {
		if g.Code == features[0].Code {
			log.Info("demo city already present", "district", g.Code)
			return nil
		}
	}
	res, err := store.Import(ctx, features, geo.ImportOptions{})
	if err != nil {
		return fmt.Errorf("demo city: %w", err)
	}
	log.Info("demo city seeded", "grids", res.Created)
	return nil
}
