package api

// ogcRoutes serves OGC API Features under /ogc.
func (s *Server) ogcRoutes() []Route { return nil }
