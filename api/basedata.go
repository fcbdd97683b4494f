package api

import "maps"

// Base data (issue 19): buildings, parcels, components and grid summaries.

// baseQuery are the query parameters of the base-data routes; baseBodies
// the routes whose body is not one JSON document.
var (
	baseQuery  = map[string][]string{}
	baseBodies = map[string]bodyKind{}
)

func init() {
	maps.Copy(queryParams, baseQuery)
	maps.Copy(bodyKinds, baseBodies)
}

// baseRoutes are the base-data routes.
func (s *Server) baseRoutes() []Route {
	return nil
}
