package web

// marketplacePages registers this area's pages.
func (s *Server) marketplacePages(r uiRouter) {}
