// Package afxdp is the appliance's AF_XDP port backend, over package xsk:
// [Open] attaches the XDP classifier to both interfaces and opens one
// AF_XDP socket per (port, queue), whose [Ports.Queues] the workers (package
// appliance) drive as bump.Ports; xsk.Bump is their bump.FastPath. It also
// watches whether each port's in-kernel redirect delivers ([Ports.CheckPaths]),
// reads a port's interface as it is now for the daemon's watch ([ReadLink]),
// and keeps the engines' negotiated set in a pinned BPF map
// ([OpenNegotiated]), so a restarted daemon finds it. [OpenStack] attaches
// the same classifier for another backend: what the workers must see is
// passed to the kernel for an AF_PACKET socket (package appliance/backend
// opens the ports either way).
//
// Everything but this comment is Linux-only.
package afxdp
