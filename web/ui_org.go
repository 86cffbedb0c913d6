package web

// orgPages registers this area's pages.
func (s *Server) orgPages(r uiRouter) {}
