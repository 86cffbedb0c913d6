package web

// adminPages registers this area's pages.
func (s *Server) adminPages(r uiRouter) {}
