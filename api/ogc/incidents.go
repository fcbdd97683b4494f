package ogc

// The incidents collection's adapter: its filter, items, item and extent over incident.Service, in the caller's scope.

import (
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"gridwatch/api/httpapi"
	"gridwatch/geo"
	"gridwatch/incident"
)

func (s *Service) ogcIncidentFilter(q ogcQuery) (incident.FeatureFilter, error) {
	f := incident.FeatureFilter{Filter: incident.Filter{BBox: q.bbox, From: q.from}, Until: q.until}
	if st := q.props["status"]; st != "" {
		for _, x := range strings.Split(st, ",") {
			status := incident.Status(strings.TrimSpace(x))
			if !status.Valid() {
				return f, httpapi.ParamError("status", st, "unknown status "+string(status))
			}
			f.Statuses = append(f.Statuses, status)
		}
	}
	if cat := q.props["category"]; cat != "" {
		if _, err := strconv.ParseUint(cat, 10, 32); err != nil || (len(cat) != 2 && len(cat) != 4) {
			return f, httpapi.ParamError("category", cat, "want a 2-digit class or 4-digit subclass code")
		}
		f.Category = cat
	}
	if p := q.props["priority"]; p != "" {
		if !contains(incident.Priorities(), p) {
			return f, httpapi.ParamError("priority", p, "want one of "+strings.Join(incident.Priorities(), ", "))
		}
		f.Priority = p
	}
	var err error
	f.InGrid, err = gridIDProp(q)
	return f, err
}

func (s *Service) ogcIncidentItems(c *gin.Context, q ogcQuery) (ogcPage, error) {
	f, err := s.ogcIncidentFilter(q)
	if err != nil {
		return ogcPage{}, err
	}
	p := httpapi.Principal(c)
	v := httpapi.IncidentViewer(p)
	matched, err := s.deps.Incidents.CountFeatures(c.Request.Context(), f, v)
	if err != nil {
		return ogcPage{}, err
	}
	f.Limit, f.Before = q.limit, q.cursor
	list, next, err := s.deps.Incidents.Features(c.Request.Context(), f, v)
	return pageOf(matched, list, next, q.crs, func(in *incident.Incident, crs ogcCRS) ogcFeature {
		return incidentFeature(httpapi.ForCaller(p, in), crs)
	}), err
}

func (s *Service) ogcIncidentItem(c *gin.Context, id int64, crs ogcCRS) (ogcFeature, error) {
	p := httpapi.Principal(c)
	in, err := s.deps.Incidents.Get(c.Request.Context(), id, httpapi.IncidentViewer(p))
	if err != nil {
		return ogcFeature{}, err
	}
	return incidentFeature(httpapi.ForCaller(p, in), crs), nil
}

// incidentFeature is an incident as a feature: the fields of the REST
// representation, flat (a grid and an assignee become their id and name).
func incidentFeature(in *incident.Incident, crs ogcCRS) ogcFeature {
	props := map[string]any{
		"source": in.Source, "external_id": in.ExternalID, "category": in.Category, "category_name": in.CategoryName,
		"title": in.Title, "description": in.Description, "address": in.Address,
		"reported_at": in.ReportedAt, "received_at": in.ReceivedAt, "priority": in.Priority,
		"grid_id": nil, "grid_code": nil, "grid_name": nil, "unassigned": in.Unassigned,
		"assignee_id": nil, "assignee_name": nil,
		"deadline": in.Deadline, "overdue": in.Overdue, "status": in.Status, "version": in.Version,
		"registered_at": in.RegisteredAt, "closed_at": in.ClosedAt, "created_by": nil, "updated_at": in.UpdatedAt,
	}
	if in.Grid != nil {
		props["grid_id"], props["grid_code"], props["grid_name"] = in.Grid.ID, in.Grid.Code, in.Grid.Name
	}
	if in.Assignee != nil {
		props["assignee_id"], props["assignee_name"] = in.Assignee.ID, in.Assignee.Name
	}
	if in.CreatedBy != "" {
		props["created_by"] = in.CreatedBy
	}
	return ogcFeature{Type: "Feature", ID: in.ID, Properties: props,
		Geometry: pointGeometry(crs, in.Location.Coordinates[0], in.Location.Coordinates[1])}
}

func (s *Service) ogcIncidentExtent(c *gin.Context) (*geo.Extent, error) {
	return s.deps.Incidents.ExtentOf(c.Request.Context(), httpapi.IncidentViewer(httpapi.Principal(c)))
}

// Cameras.
