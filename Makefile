# make deb: the Debian package (tcpincd and tcpincctl, the systemd unit, the
# default configuration as a conffile, the Wireshark dissector), built with
# dpkg-deb into $(OUT). Go and dpkg are all it needs; no root.
#
#   make deb                      build/tcpinc_<version>_<arch>.deb
#   make deb OUT=/tmp/x DEB_VERSION=1.2.3
#
# Install: dpkg -i build/tcpinc_*.deb; edit /etc/tcpinc/tcpincd.yaml (inside,
# outside), then systemctl daemon-reload && systemctl enable --now tcpincd.

GO          ?= go
OUT         ?= build
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo unknown)
# A Debian version must start with a digit: 0~git<commit date>.<commit>.
DEB_VERSION ?= 0~git$(shell git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null || date -u +%Y%m%d).$(shell git rev-parse --short HEAD 2>/dev/null || echo 0)
DEB_ARCH    ?= $(shell dpkg --print-architecture)
MULTIARCH   ?= $(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo $$(uname -m)-linux-gnu)
# Debian and Go name amd64, arm64, riscv64, ppc64le and s390x alike.
GOARCH_DEB  := $(DEB_ARCH)

DEB   := $(OUT)/tcpinc_$(DEB_VERSION)_$(DEB_ARCH).deb
STAGE := $(OUT)/deb-root

.PHONY: deb clean
deb:
	rm -rf $(STAGE)
	mkdir -p $(STAGE)/DEBIAN $(STAGE)/usr/bin
	CGO_ENABLED=0 GOOS=linux GOARCH=$(GOARCH_DEB) $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(STAGE)/usr/bin/tcpincd ./cmd/tcpincd
	CGO_ENABLED=0 GOOS=linux GOARCH=$(GOARCH_DEB) $(GO) build -trimpath -ldflags "-s -w" -o $(STAGE)/usr/bin/tcpincctl ./cmd/tcpincctl
	install -D -m 0644 deploy/tcpincd.example.yaml $(STAGE)/etc/tcpinc/tcpincd.yaml
	install -d $(STAGE)/lib/systemd/system
	sed 's|/usr/local/bin/tcpincd|/usr/bin/tcpincd|g' deploy/systemd/tcpincd.service > $(STAGE)/lib/systemd/system/tcpincd.service
	chmod 0644 $(STAGE)/lib/systemd/system/tcpincd.service
	install -D -m 0644 deploy/wireshark/tcpinc.lua $(STAGE)/usr/lib/$(MULTIARCH)/wireshark/plugins/tcpinc.lua
	install -D -m 0644 LICENSE $(STAGE)/usr/share/doc/tcpinc/copyright
	install -D -m 0644 README.md $(STAGE)/usr/share/doc/tcpinc/README.md
	echo /etc/tcpinc/tcpincd.yaml > $(STAGE)/DEBIAN/conffiles
	{ \
		echo "Package: tcpinc"; \
		echo "Version: $(DEB_VERSION)"; \
		echo "Architecture: $(DEB_ARCH)"; \
		echo "Maintainer: tcpinc developers <tcpinc@example.org>"; \
		echo "Installed-Size: $$(du -sk --exclude=DEBIAN $(STAGE) | cut -f1)"; \
		echo "Section: net"; \
		echo "Priority: optional"; \
		echo "Recommends: ethtool"; \
		echo "Suggests: tshark"; \
		echo "Description: inline appliance for opportunistic TCP encryption (TCP-ENO, tcpcrypt)"; \
		echo " tcpincd is a two-port layer-2 bump (XDP, AF_XDP) that gives every TCP"; \
		echo " connection between two sites opportunistic encryption with TCP-ENO"; \
		echo " (RFC 8547) and tcpcrypt (RFC 8548), falling back to plain TCP when the"; \
		echo " far side does not speak them. tcpincctl is its command-line client;"; \
		echo " the package also installs a Wireshark dissector for both protocols."; \
	} > $(STAGE)/DEBIAN/control
	dpkg-deb --root-owner-group -Zxz --build $(STAGE) $(DEB)
	rm -rf $(STAGE)

clean:
	rm -rf $(OUT)
