package patrol

import (
	"time"

	"gridwatch"
)

// paramError is a bad query parameter; it names it.
func paramError(name, value, why string) error {
	return gridwatch.Errorf(gridwatch.EInvalid, "query parameter %s=%q: %s", name, value, why).
		WithDetails(map[string]any{"param": name, "value": value})
}

// loadZone reads an IANA time zone name (the tz parameter).
func loadZone(name string) (*time.Location, error) {
	loc, err := time.LoadLocation(name)
	if err != nil || name == "" || name == "Local" {
		return nil, paramError("tz", name, "want an IANA time zone such as Asia/Shanghai")
	}
	return loc, nil
}

// Day returns the bounds [from, to) of day (YYYY-MM-DD) in zone (an IANA
// name): a list's ?day=&tz=. A day is midnight to midnight, 23 or 25
// hours where the clocks change.
func Day(day, zone string) (from, to time.Time, err error) {
	loc, err := loadZone(zone)
	if err != nil {
		return from, to, err
	}
	d, err := time.ParseInLocation(time.DateOnly, day, loc)
	if err != nil || d.Year() < 2000 || d.Year() > 9000 {
		return from, to, paramError("day", day, "want a date such as 2026-11-26")
	}
	return d, d.AddDate(0, 0, 1), nil
}

// MonthQuery returns the statistics query of month (YYYY-MM; "" for the
// current one) cut in zone (an IANA name).
func (s *Service) MonthQuery(month, zone string) (StatsQuery, error) {
	loc, err := loadZone(zone)
	if err != nil {
		return StatsQuery{}, err
	}
	var m time.Time
	if month == "" {
		now := s.now().In(loc)
		m = time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, loc)
	} else if m, err = time.ParseInLocation("2006-01", month, loc); err != nil || m.Year() < 2000 || m.Year() > 9000 {
		return StatsQuery{}, paramError("month", month, "want a month such as 2026-11")
	}
	return StatsQuery{Month: m.Format("2006-01"), Zone: zone, From: m, To: m.AddDate(0, 1, 0)}, nil
}
