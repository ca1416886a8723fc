module github.com/tcpinc/tcpinc

go 1.26.0

require golang.org/x/crypto v0.59.0

require (
	github.com/cilium/ebpf v0.22.0
	github.com/cloudflare/circl v1.6.5 // indirect
	github.com/klauspost/cpuid/v2 v2.4.2 // indirect
	go.yaml.in/yaml/v3 v3.0.6 // indirect
	golang.org/x/sys v0.50.0
)
