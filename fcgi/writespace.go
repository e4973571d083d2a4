// writespace.go: keeping a unix socket's write-space wake-ups away from the gateway.

package fcgi

// Write-space wake-ups.
//
// The runtime's poller registers every socket for both directions (EPOLLIN|EPOLLOUT,
// edge-triggered). A unix stream socket wakes the pollers of its sending side with EPOLLOUT
// each time its peer reads from it (the kernel's unix_write_space runs for every buffer the
// reader consumes, however empty the socket is). So the web server reading each response
// woke the gateway's poller thread, with nothing waiting to write. On a kept connection that
// is one wake-up per request. Measured on the 2-core development VM with nginx, one kept
// connection, the hello app, everything on one CPU (perf sched): nginx's read of each
// response woke the gateway (perf's sched_wakeup stacks: recvfrom, unix_write_space,
// ep_poll_callback), and the gateway ran 8 µs for it. Without those wake-ups a request took
// 111-117 µs, against 129-134 µs with them (6 runs of each, alternated).
//
// So once a unix connection is known to be kept (its first FCGI_KEEP_CONN request), and
// while fewer than maxQuietConns connections are open, its registration in the runtime's
// epoll set is changed (EPOLL_CTL_MOD) to leave EPOLLOUT out, with the same data the runtime
// gave it, read from /proc/self/fdinfo. A write that finds the socket buffer full puts
// EPOLLOUT back before it waits (the change re-checks the socket and queues the event at once
// if there is room already), and takes it out again once it is done. Why this is safe:
//   - The changes happen inside the descriptor's RawConn callbacks, which hold it open: its
//     number cannot be closed and reused by another socket meanwhile.
//   - The runtime only adds and deletes registrations, never changes one; the data (its
//     pointer to the descriptor's poll state) is passed back unchanged.
//   - Anything not as expected (no /proc, the descriptor not found, another format) leaves
//     the runtime's registration as it is: the connection only keeps its wake-ups.
//
// TCP sockets do not need it: they signal write space only to a writer that found the
// buffer full. Linux only (writespace_linux.go); elsewhere connections keep the runtime's
// registration.

// maxQuietConns: a connection accepted while this many are open keeps its write-space
// wake-ups. Finding a connection's registration reads a line per descriptor the runtime
// polls, and a gateway that busy seldom sleeps between two events anyway.
const maxQuietConns = 256
