package web

// deliveryPages registers this area's pages.
func (s *Server) deliveryPages(r uiRouter) {}
