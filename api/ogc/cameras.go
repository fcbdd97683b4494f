package ogc

// The cameras collection's adapter: its items, item and extent over camera.Store, in the caller's scope.

import (
	"github.com/gin-gonic/gin"

	"gridwatch/api/httpapi"
	"gridwatch/camera"
	"gridwatch/geo"
)

func (s *Service) ogcCameraItems(c *gin.Context, q ogcQuery) (ogcPage, error) {
	f := camera.FeatureFilter{Filter: camera.Filter{BBox: q.bbox}, Code: q.props["code"], UpdatedFrom: q.from, UpdatedUntil: q.until}
	if st := q.props["status"]; st != "" {
		if st != "online" && st != "connecting" && st != "offline" {
			return ogcPage{}, httpapi.ParamError("status", st, "want online, connecting or offline")
		}
		f.Status = st
	}
	var err error
	if f.InGrid, err = gridIDProp(q); err != nil {
		return ogcPage{}, err
	}
	v := httpapi.CameraViewer(httpapi.Principal(c))
	matched, err := s.deps.Cameras.CountFeatures(c.Request.Context(), f, v)
	if err != nil {
		return ogcPage{}, err
	}
	f.Limit, f.After = q.limit, q.cursor
	list, next, err := s.deps.Cameras.Features(c.Request.Context(), f, v)
	return pageOf(matched, list, next, q.crs, cameraFeature), err
}

func (s *Service) ogcCameraItem(c *gin.Context, id int64, crs ogcCRS) (ogcFeature, error) {
	cam, err := s.deps.Cameras.Get(c.Request.Context(), id, httpapi.CameraViewer(httpapi.Principal(c)))
	if err != nil {
		return ogcFeature{}, err
	}
	return cameraFeature(cam, crs), nil
}

// cameraFeature is a camera as a feature, from the camera API's public
// representation: its stream URLs have no credentials.
func cameraFeature(cam *camera.Camera, crs ogcCRS) ogcFeature {
	props := map[string]any{
		"code": cam.Code, "name": cam.Name, "heading": cam.Heading, "fov": cam.FOV, "range": cam.Range,
		"main_url": cam.MainURL, "sub_url": cam.SubURL, "has_credentials": cam.HasCreds,
		"enabled": cam.Enabled, "record": cam.Record, "grid_id": nil, "grid_code": nil,
		"status": cam.Status, "status_reason": cam.StatusReason, "status_since": cam.StatusSince,
		"version": cam.Version, "created_at": cam.CreatedAt, "updated_at": cam.UpdatedAt,
	}
	if cam.Grid != nil {
		props["grid_id"], props["grid_code"] = cam.Grid.ID, cam.Grid.Code
	}
	return ogcFeature{Type: "Feature", ID: cam.ID, Properties: props,
		Geometry: pointGeometry(crs, cam.Location.Coordinates[0], cam.Location.Coordinates[1])}
}

func (s *Service) ogcCameraExtent(c *gin.Context) (*geo.Extent, error) {
	return s.deps.Cameras.ExtentOf(c.Request.Context(), httpapi.CameraViewer(httpapi.Principal(c)))
}
