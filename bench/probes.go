package bench

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// LinkInfo is what the harness reads from `ip -s -j link show dev X`.
type LinkInfo struct {
	MAC                  net.HardwareAddr
	RxPackets, TxPackets uint64
	RxBytes              uint64
}

// ParseLinkJSON decodes `ip -s -j link show dev X` (a one-element array).
func ParseLinkJSON(js []byte) (LinkInfo, error) {
	var links []struct {
		Address string `json:"address"`
		Stats64 struct {
			Rx struct {
				Packets uint64 `json:"packets"`
				Bytes   uint64 `json:"bytes"`
			} `json:"rx"`
			Tx struct {
				Packets uint64 `json:"packets"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(js, &links); err != nil {
		return LinkInfo{}, fmt.Errorf("parse ip link json: %w", err)
	}
	if len(links) != 1 {
		return LinkInfo{}, fmt.Errorf("ip link json: %d links, want 1", len(links))
	}
	mac, err := net.ParseMAC(links[0].Address)
	if err != nil {
		return LinkInfo{}, fmt.Errorf("ip link json: address: %w", err)
	}
	st := links[0].Stats64
	return LinkInfo{MAC: mac, RxPackets: st.Rx.Packets, TxPackets: st.Tx.Packets, RxBytes: st.Rx.Bytes}, nil
}

// ParseTCPOutSegs returns TCP OutSegs from /proc/net/snmp: the segments
// the stack has sent, every one counted even when the stack hands the
// device a GSO super-packet of many (bench/appcost.go says why it matters).
func ParseTCPOutSegs(snmp string) (uint64, error) {
	var names []string
	for line := range strings.Lines(snmp) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Tcp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, name := range names {
			if name == "OutSegs" && i < len(f) {
				return strconv.ParseUint(f[i], 10, 64)
			}
		}
		break
	}
	return 0, fmt.Errorf("/proc/net/snmp: no Tcp OutSegs")
}

// TrafgenConfig returns a trafgen packet configuration for one Ethernet/IPv4/UDP
// frame of frameLen bytes (without FCS) from src to dst port 9 (discard).
// trafgen fills in the IPv4 length and checksum and the UDP length and checksum.
func TrafgenConfig(dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, frameLen int) (string, error) {
	const hdrs = 14 + 20 + 8
	if frameLen < hdrs || frameLen > 1514 {
		return "", fmt.Errorf("frame length %d out of range %d..1514", frameLen, hdrs)
	}
	if !src.Is4() || !dst.Is4() {
		return "", fmt.Errorf("trafgen config: IPv4 addresses only (%s -> %s)", src, dst)
	}
	return fmt.Sprintf(`{
  eth(da=%s, sa=%s),
  ipv4(saddr=%s, daddr=%s, ttl=64),
  udp(sp=40000, dp=9),
  fill(0x55, %d)
}
`, dstMAC, srcMAC, src, dst, frameLen-hdrs), nil
}

// WireguardConfig renders a wireguard UAPI "set" request body (without the
// leading "set=1" and the terminating blank line) for a device with one peer.
func WireguardConfig(privateKey, peerPublic []byte, listenPort int, endpoint netip.AddrPort, allowed []netip.Prefix) string {
	var b strings.Builder
	fmt.Fprintf(&b, "private_key=%s\n", hex.EncodeToString(privateKey))
	fmt.Fprintf(&b, "listen_port=%d\n", listenPort)
	b.WriteString("replace_peers=true\n")
	fmt.Fprintf(&b, "public_key=%s\n", hex.EncodeToString(peerPublic))
	fmt.Fprintf(&b, "endpoint=%s\n", endpoint)
	b.WriteString("replace_allowed_ips=true\n")
	for _, p := range allowed {
		fmt.Fprintf(&b, "allowed_ip=%s\n", p)
	}
	return b.String()
}

// ParseUAPIErrno reads a wireguard UAPI response ("key=value" lines ending in
// a blank line) and returns the value of errno (0 = success).
func ParseUAPIErrno(resp string) (int, error) {
	sc := bufio.NewScanner(strings.NewReader(resp))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok && k == "errno" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return 0, fmt.Errorf("uapi errno %q: %w", v, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("uapi response without errno: %q", resp)
}
