package web

// partnerPages registers this area's pages.
func (s *Server) partnerPages(r uiRouter) {}
