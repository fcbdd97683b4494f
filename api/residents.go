package api

import "maps"

// People (issue 19): households, residents, unmasking, moves, home visits.

// peopleQuery are the query parameters of the people routes; peopleBodies
// the routes whose body is not one JSON document.
var (
	peopleQuery  = map[string][]string{}
	peopleBodies = map[string]bodyKind{}
)

func init() {
	maps.Copy(queryParams, peopleQuery)
	maps.Copy(bodyKinds, peopleBodies)
}

// peopleRoutes are the people routes.
func (s *Server) peopleRoutes() []Route {
	return nil
}
