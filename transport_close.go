package flowcred

// CloseIdleConnections closes the upstream transport's idle keep-alive
// connections. http.Client.CloseIdleConnections only reaches a transport
// that has this method, so without it clean (unmount, plugin reload) left
// connections to token endpoints open until their idle timeout.
func (t *userAgentTransport) CloseIdleConnections() {
	if ci, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}
