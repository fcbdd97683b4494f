package api

// tileRoutes serves the vector tiles.
func (s *Server) tileRoutes() []Route { return nil }
