-- tcpinc.lua: Wireshark/tshark dissectors for TCP-ENO (RFC 8547) and
-- tcpcrypt (RFC 8548).
--
--   tshark -X lua_script:deploy/wireshark/tcpinc.lua -r capture.pcapng -Y tcpcrypt.frame
--
-- or copy this file into the personal Lua plugins folder
-- (~/.local/lib/wireshark/plugins/, see Help > About > Folders; the Debian
-- package installs it in /usr/lib/x86_64-linux-gnu/wireshark/plugins/).
--
-- Protocol "tcpeno": TCP option 69, in its SYN form (global suboption with
-- b and a, TEP suboptions, length bytes, suboption data; for tcpcrypt TEPs
-- with v = 1, the resumption identifier half and nonce of RFC 8548 §3.5)
-- and its non-SYN form (presence only, RFC 8547 §4.1), and the legacy
-- experimental encoding (option 253 with ExID 0x454E, field tcpeno.legacy),
-- which is shown but is not TCP-ENO and takes no part in negotiation. Malformed options (RFC 8547 §4.1: a length byte past the
-- option's end, followed by a byte that is not a TEP with v = 1, or last)
-- get expert info.
--
-- Protocol "tcpcrypt": the byte streams of connections whose SYN and
-- SYN-ACK negotiated a tcpcrypt TEP (0x21-0x24). The script reassembles each
-- direction itself (by sequence number, from the ISN of the SYN or SYN-ACK;
-- retransmitted and out-of-order bytes are handled) and shows, in the packet
-- where each one completes, Init1 and Init2 (magic, message_len, the AEAD
-- list or choice, the nonce, the public key) and each frame's header (the
-- rekey bit, clen) with the frame's stream offset, which is the offset
-- that goes into its nonce (RFC 8548 §4.2). A resumed session (B answered
-- with a resumption suboption) has no Init messages: frames start at
-- offset 0. Contents stay encrypted (tcpincctl decode decrypts with a key
-- log). Limits: a simultaneous open is not followed; offsets wrap at 4 GiB.

local tcpeno = Proto("tcpeno", "TCP Encryption Negotiation Option (RFC 8547)")
local tcpcrypt = Proto("tcpcrypt", "tcpcrypt (RFC 8548)")

local TEPS = {
	[0x20] = "experimental",
	[0x21] = "TCPCRYPT_ECDHE_P256",
	[0x22] = "TCPCRYPT_ECDHE_P521",
	[0x23] = "TCPCRYPT_ECDHE_Curve25519",
	[0x24] = "TCPCRYPT_ECDHE_Curve448",
}
-- Public key length per tcpcrypt TEP (RFC 8548 §5).
local PUBLEN = { [0x21] = 65, [0x22] = 133, [0x23] = 32, [0x24] = 56 }
local AEADS = {
	[0x0001] = "AEAD_AES_128_GCM",
	[0x0002] = "AEAD_AES_256_GCM",
	[0x0010] = "AEAD_CHACHA20_POLY1305",
}
local FORMS = { [0] = "non-SYN form", [1] = "SYN form" }
local INIT1_MAGIC, INIT2_MAGIC = 0x15101a0e, 0x097105e0
local NONCE_LEN, MIN_CLEN, MAX_INIT = 32, 17, 65536
local LEGACY_EXID = 0x454E

local ef = tcpeno.fields
ef.kind = ProtoField.uint8("tcpeno.kind", "Kind", base.DEC)
ef.len = ProtoField.uint8("tcpeno.len", "Length", base.DEC)
ef.exid = ProtoField.uint16("tcpeno.exid", "Experiment ID", base.HEX)
ef.legacy = ProtoField.bool("tcpeno.legacy", "Legacy experimental encoding (option 253, ExID 0x454E)")
ef.form = ProtoField.uint8("tcpeno.form", "Form", base.DEC, FORMS)
ef.global = ProtoField.uint8("tcpeno.global", "Global suboption", base.HEX)
ef.z = ProtoField.uint8("tcpeno.z", "Reserved (z)", base.HEX, nil, 0x1c)
ef.a = ProtoField.uint8("tcpeno.a", "Application-aware (a)", base.DEC, nil, 0x02)
ef.b = ProtoField.uint8("tcpeno.b", "Passive role (b)", base.DEC, nil, 0x01)
ef.sub = ProtoField.bytes("tcpeno.suboption", "TEP suboption")
ef.sublen = ProtoField.uint8("tcpeno.sublen", "Suboption length byte (data length - 1)", base.DEC, nil, 0x1f)
ef.v = ProtoField.uint8("tcpeno.v", "Data follows (v)", base.DEC, nil, 0x80)
ef.tep = ProtoField.uint8("tcpeno.tep", "TEP", base.HEX, TEPS, 0x7f)
ef.data = ProtoField.bytes("tcpeno.data", "Suboption data")
ef.resume = ProtoField.bytes("tcpeno.resume_id", "Resumption identifier half")
ef.rnonce = ProtoField.bytes("tcpeno.resume_nonce", "Resumption nonce")
ef.contents = ProtoField.bytes("tcpeno.contents", "Contents (ignored in the non-SYN form)")

local ee_malformed = ProtoExpert.new("tcpeno.malformed", "Malformed TCP-ENO option",
	expert.group.MALFORMED, expert.severity.ERROR)
local ee_legacy = ProtoExpert.new("tcpeno.legacy.note", "Legacy experimental TCP-ENO encoding: not TCP-ENO (RFC 8547 §11)",
	expert.group.PROTOCOL, expert.severity.NOTE)
local ee_resume = ProtoExpert.new("tcpeno.resume.bad", "v = 1 data is not a tcpcrypt resumption suboption (RFC 8548 §3.5)",
	expert.group.PROTOCOL, expert.severity.WARN)
tcpeno.experts = { ee_malformed, ee_legacy, ee_resume }

local cf = tcpcrypt.fields
cf.role = ProtoField.string("tcpcrypt.sender", "Sender's role")
cf.tep = ProtoField.uint8("tcpcrypt.tep", "Negotiated TEP", base.HEX, TEPS)
cf.resumed = ProtoField.bool("tcpcrypt.resumed", "Resumed session")
cf.init1 = ProtoField.bytes("tcpcrypt.init1", "Init1")
cf.init2 = ProtoField.bytes("tcpcrypt.init2", "Init2")
cf.magic = ProtoField.uint32("tcpcrypt.magic", "Magic", base.HEX)
cf.mlen = ProtoField.uint32("tcpcrypt.message_len", "message_len", base.DEC)
cf.nciphers = ProtoField.uint8("tcpcrypt.nciphers", "nciphers", base.DEC)
cf.cipher = ProtoField.uint16("tcpcrypt.cipher", "AEAD offered", base.HEX, AEADS)
cf.sym = ProtoField.uint16("tcpcrypt.sym_cipher", "AEAD chosen", base.HEX, AEADS)
cf.nonce = ProtoField.bytes("tcpcrypt.nonce", "Nonce")
cf.pub = ProtoField.bytes("tcpcrypt.pubkey", "Public key")
cf.ignored = ProtoField.bytes("tcpcrypt.ignored", "Ignored")
cf.frame = ProtoField.bytes("tcpcrypt.frame", "Frame header")
cf.offset = ProtoField.uint64("tcpcrypt.frame.offset", "Stream offset (nonce)", base.DEC)
cf.control = ProtoField.uint8("tcpcrypt.frame.control", "Control", base.HEX)
cf.rekey = ProtoField.uint8("tcpcrypt.frame.rekey", "Rekey", base.DEC, nil, 0x01)
cf.clen = ProtoField.uint16("tcpcrypt.frame.clen", "clen", base.DEC)
cf.flen = ProtoField.uint32("tcpcrypt.frame.len", "Frame length (3 + clen)", base.DEC)

local ce_malformed = ProtoExpert.new("tcpcrypt.malformed", "Malformed tcpcrypt message",
	expert.group.MALFORMED, expert.severity.ERROR)
local ce_gap = ProtoExpert.new("tcpcrypt.gap", "Bytes missing from the capture: stream not followed further",
	expert.group.SEQUENCE, expert.severity.WARN)
tcpcrypt.experts = { ce_malformed, ce_gap }

local f_syn = Field.new("tcp.flags.syn")
local f_ack = Field.new("tcp.flags.ack")
local f_stream = Field.new("tcp.stream")
local f_seq = Field.new("tcp.seq_raw")
local f_len = Field.new("tcp.len")
local f_hdrlen = Field.new("tcp.hdr_len")
local f_srcport = Field.new("tcp.srcport")
local f_ipsrc = Field.new("ip.src")
local f_ip6src = Field.new("ipv6.src")

-- Parsed SYN-form options by frame number (filled on the first pass) and
-- per TCP stream the negotiation and the two byte streams.
local eno_by_frame = {}
local conns = {}
-- tcpcrypt records to show, by frame number.
local recs_by_frame = {}

function tcpeno.init()
	eno_by_frame, conns, recs_by_frame = {}, {}, {}
end

local function bit(x, m) return math.floor(x / m) % 2 == 1 end

-- dissect_syn_form parses suboptions in tvb[off, len) into tree and
-- returns {global=, teps={ {byte=, data=ByteArray|nil} }} or nil, err.
local function dissect_syn_form(tvb, off, tree, pinfo)
	local res = { teps = {} }
	local i, stop = off, tvb:len()
	local err
	while i < stop do
		local x = tvb(i, 1):uint()
		if x < 0x20 then
			local g = tree:add(ef.global, tvb(i, 1))
			g:add(ef.z, tvb(i, 1))
			g:add(ef.a, tvb(i, 1))
			g:add(ef.b, tvb(i, 1))
			g:append_text(string.format(" (b=%d a=%d)", x % 2, math.floor(x / 2) % 2))
			if res.global == nil then res.global = x end
			i = i + 1
		elseif x < 0x80 then
			local s = tree:add(ef.sub, tvb(i, 1))
			s:add(ef.v, tvb(i, 1))
			s:add(ef.tep, tvb(i, 1))
			s:set_text("TEP " .. (TEPS[x] or string.format("0x%02x", x)))
			table.insert(res.teps, { byte = x })
			i = i + 1
		else
			local n, start, item
			if x < 0xa0 then -- length byte 100nnnnn
				if i + 1 >= stop then
					err = "length byte is the last byte of the option"
					item = tree:add(ef.sublen, tvb(i, 1))
					item:add_proto_expert_info(ee_malformed, err)
					break
				end
				local t = tvb(i + 1, 1):uint()
				n = (x % 32) + 1
				if t < 0xa0 then
					err = string.format("length byte followed by 0x%02x, not a TEP with v = 1", t)
					item = tree:add(ef.sublen, tvb(i, 1))
					item:add_proto_expert_info(ee_malformed, err)
					break
				end
				if i + 2 + n > stop then
					err = string.format("length byte announces %d data bytes past the end of the option", n)
					item = tree:add(ef.sublen, tvb(i, stop - i))
					item:add_proto_expert_info(ee_malformed, err)
					break
				end
				item = tree:add(ef.sub, tvb(i, 2 + n))
				item:add(ef.sublen, tvb(i, 1))
				start = i + 1
			else -- TEP with v = 1: the data runs to the end of the option
				n = stop - i - 1
				item = tree:add(ef.sub, tvb(i, stop - i))
				start = i
			end
			local tb = tvb(start, 1):uint()
			local tep = tb % 128
			item:add(ef.v, tvb(start, 1))
			item:add(ef.tep, tvb(start, 1))
			item:set_text(string.format("TEP %s, v=1, %d data bytes", TEPS[tep] or string.format("0x%02x", tep), n))
			local entry = { byte = tb }
			if n > 0 then
				local d = tvb(start + 1, n)
				item:add(ef.data, d)
				entry.data = d:bytes()
				if PUBLEN[tep] then
					if n >= 9 and n <= 17 then
						item:add(ef.resume, tvb(start + 1, 9))
						if n > 9 then item:add(ef.rnonce, tvb(start + 10, n - 9)) end
					else
						item:add_proto_expert_info(ee_resume)
					end
				end
			end
			table.insert(res.teps, entry)
			i = start + 1 + n
		end
	end
	if err then return nil, err end
	return res
end

-- dissect_eno shows one ENO option; body is where the suboptions start.
local function dissect_eno(tvb, pinfo, tree, legacy)
	local t = tree:add(tcpeno, tvb())
	t:add(ef.kind, tvb(0, 1))
	local lenitem = t:add(ef.len, tvb(1, 1))
	local body = 2
	if legacy then
		t:add(ef.exid, tvb(2, 2))
		t:add(ef.legacy, tvb(2, 2), true)
		t:add_proto_expert_info(ee_legacy)
		body = 4
	end
	if tvb(1, 1):uint() ~= tvb:len() or tvb:len() > 40 then
		lenitem:add_proto_expert_info(ee_malformed, "option length differs from its size or exceeds 40 bytes")
		return
	end
	local syn = f_syn()
	local is_syn = syn ~= nil and syn.value == true
	t:add(ef.form, is_syn and 1 or 0):set_generated()
	if not is_syn then
		t:append_text(", non-SYN form")
		if tvb:len() > body then t:add(ef.contents, tvb(body)) end
		return
	end
	local res, err = dissect_syn_form(tvb, body, t, pinfo)
	if not res then
		t:append_text(", malformed: " .. err)
		return
	end
	local parts = {}
	if res.global then table.insert(parts, string.format("b=%d a=%d", res.global % 2, math.floor(res.global / 2) % 2)) end
	for _, e in ipairs(res.teps) do
		local s = TEPS[e.byte % 128] or string.format("0x%02x", e.byte % 128)
		if e.data then s = s .. "+resume" end
		table.insert(parts, s)
	end
	t:append_text(", SYN form: " .. table.concat(parts, ", "))
	if not legacy and not pinfo.visited then
		eno_by_frame[pinfo.number] = res
	end
end

function tcpeno.dissector(tvb, pinfo, tree)
	dissect_eno(tvb, pinfo, tree, false)
	return tvb:len()
end

DissectorTable.get("tcp.option"):add(69, tcpeno)

-- The legacy encoding is found after the fact: option 253 stays with
-- Wireshark's own experimental-option dissector (TCP Fast Open's
-- experimental form lives there too), and the postdissector below shows
-- the ones with ExID 0x454E as tcpeno.
local f_exid = Field.new("tcp.options.experimental.exid")
local function legacy_options(tvb, pinfo, tree)
	for _, fi in ipairs({ f_exid() }) do
		if fi.value == LEGACY_EXID and fi.offset >= 2 then
			local start = fi.offset - 2
			local n = tvb(start + 1, 1):uint()
			if n >= 4 and start + n <= tvb:len() then
				dissect_eno(tvb(start, n):tvb(), pinfo, tree, true)
			end
		end
	end
end

-- Negotiation (RFC 8547 §4.5): host B's option decides; the TEP is the last
-- one in B's option that A also offered. B answering with v = 1 and a
-- resumption identifier means a resumed session (RFC 8548 §3.5).
local function negotiate(a, b)
	if not a or not b then return nil end
	local offered = {}
	for _, e in ipairs(a.teps) do offered[e.byte % 128] = true end
	for i = #b.teps, 1, -1 do
		local e = b.teps[i]
		local tep = e.byte % 128
		if offered[tep] then
			local resumed = e.byte >= 0x80 and e.data ~= nil and e.data:len() >= 9 and e.data:len() <= 17
			return tep, resumed
		end
	end
	return nil
end

local function add_rec(frame, r)
	local l = recs_by_frame[frame]
	if not l then
		l = {}
		recs_by_frame[frame] = l
	end
	table.insert(l, r)
end

local function u32(ba, i)
	return ((ba:get_index(i) * 256 + ba:get_index(i + 1)) * 256 + ba:get_index(i + 2)) * 256 + ba:get_index(i + 3)
end

-- feed processes ba (the bytes at stream offset off; pos: where they start
-- in the frame's tvb) through direction d's parser.
local function feed(c, d, frame, off, ba, pos)
	local i, n = 0, ba:len()
	while i < n and d.state ~= "dead" do
		if d.skip > 0 then
			local k = math.min(d.skip, n - i)
			d.skip = d.skip - k
			i = i + k
		else
			if d.buf:len() == 0 then d.bufoff, d.bufpos = off + i, pos and (pos + i) end
			local need
			if d.state == "init" then
				need = 8
				if d.buf:len() >= 8 then need = d.mlen end
			else
				need = 3
			end
			local k = math.min(need - d.buf:len(), n - i)
			d.buf:append(ba:subset(i, k))
			i = i + k
			if d.buf:len() == need then
				local r = { dir = d.role, off = d.bufoff, len = need }
				-- Whole in this segment: point at the frame's bytes.
				if d.bufpos and d.bufoff >= off then r.pos = d.bufpos else r.bytes = d.buf end
				if d.state == "init" and need == 8 then
					local magic, mlen = u32(d.buf, 0), u32(d.buf, 4)
					local want = d.role == "A" and INIT1_MAGIC or INIT2_MAGIC
					local min = d.role == "A" and (9 + 2 + NONCE_LEN) or (10 + NONCE_LEN)
					if magic ~= want then
						r.kind, r.err = d.role == "A" and "init1" or "init2", string.format("bad magic 0x%08x, want 0x%08x", magic, want)
					elseif mlen < min or mlen > MAX_INIT then
						r.kind, r.err = d.role == "A" and "init1" or "init2", string.format("message_len %d outside %d..%d", mlen, min, MAX_INIT)
					else
						d.mlen = mlen
						r = nil -- wait for the rest
					end
					if r then
						r.bytes, r.pos = d.buf, nil
						add_rec(frame, r)
						d.state = "dead"
					end
				elseif d.state == "init" then
					r.kind = d.role == "A" and "init1" or "init2"
					add_rec(frame, r)
					d.state, d.buf = "frames", ByteArray.new()
				else
					r.kind = "frame"
					local control = d.buf:get_index(0)
					local clen = d.buf:get_index(1) * 256 + d.buf:get_index(2)
					r.control, r.clen = control, clen
					if clen < MIN_CLEN then
						r.err = string.format("clen %d below %d (flags byte and tag)", clen, MIN_CLEN)
					end
					add_rec(frame, r)
					d.skip = clen
					d.buf = ByteArray.new()
				end
			end
		end
	end
end

-- segment handles one TCP segment's payload for direction d.
local function segment(c, d, frame, off, ba, pos)
	local n = ba:len()
	if off + n <= d.next or d.state == "dead" then return end -- already seen
	if off > d.next then
		if d.ooo[off] == nil or d.ooo[off]:len() < n then d.ooo[off] = ba end
		d.ooocount = d.ooocount + 1
		if d.ooocount > 4096 then -- never filled: give up on this direction
			add_rec(frame, { kind = "gap", dir = d.role, off = d.next })
			d.state = "dead"
		end
		return
	end
	local cut = d.next - off
	feed(c, d, frame, d.next, ba:subset(cut, n - cut), pos and (pos + cut))
	d.next = off + n
	-- Held segments that now fit.
	local progress = true
	while progress do
		progress = false
		for o, b in pairs(d.ooo) do
			if o <= d.next then
				d.ooo[o] = nil
				d.ooocount = d.ooocount - 1
				if o + b:len() > d.next then
					local k = d.next - o
					feed(c, d, frame, d.next, b:subset(k, b:len() - k), nil)
					d.next = o + b:len()
				end
				progress = true
			end
		end
	end
end

local function newdir(role, resumed)
	return { role = role, state = resumed and "frames" or "init", buf = ByteArray.new(), skip = 0,
		next = 0, ooo = {}, ooocount = 0 }
end

local function srckey()
	local a = f_ipsrc() or f_ip6src()
	return tostring(a.value) .. "/" .. tostring(f_srcport().value)
end

local function track(tvb, pinfo)
	local st = { f_stream() }
	if #st ~= 1 then return end -- no TCP, or TCP quoted inside ICMP
	local stream = st[1].value
	local syn, ack = f_syn().value, f_ack().value
	local key = srckey()
	local c = conns[stream]
	if syn and not ack then
		if not c or c.done then
			c = { isn = {} }
			conns[stream] = c
		end
		c.a, c.isn[key], c.opta = key, f_seq().value, eno_by_frame[pinfo.number]
		return
	end
	if not c then return end
	if syn and ack then
		c.b, c.isn[key], c.optb = key, f_seq().value, eno_by_frame[pinfo.number]
		c.tep, c.resumed = negotiate(c.opta, c.optb)
		if c.tep and PUBLEN[c.tep] then
			c.dirs = { [c.a] = newdir("A", c.resumed), [c.b] = newdir("B", c.resumed) }
		end
		return
	end
	local n = f_len().value
	if not c.dirs or n == 0 or not c.dirs[key] then return end
	local off = (f_seq().value - c.isn[key] - 1) % 4294967296
	local pos = f_srcport().offset + f_hdrlen().value
	if pos + n > tvb:len() then return end -- truncated capture
	segment(c, c.dirs[key], pinfo.number, off, tvb:bytes(pos, n), pos)
	c.last = pinfo.number
end

local function show(tvb, pinfo, tree, recs, c)
	local t = tree:add(tcpcrypt)
	local kinds = {}
	for _, r in ipairs(recs) do
		local rng
		if r.pos then
			rng = tvb(r.pos, r.len)
		elseif r.bytes then
			rng = r.bytes:tvb("tcpcrypt " .. (r.kind or "")):range()
		end
		if r.kind == "gap" then
			local it = t:add(cf.role, r.dir)
			it:add_proto_expert_info(ce_gap)
		elseif r.kind == "frame" then
			local it = t:add(cf.frame, rng(0, 3))
			it:set_text(string.format("Frame from %s at stream offset %d: clen %d%s", r.dir, r.off, r.clen,
				r.control % 2 == 1 and ", rekey" or ""))
			it:add(cf.role, r.dir):set_generated()
			it:add(cf.offset, UInt64.new(r.off)):set_generated()
			it:add(cf.control, rng(0, 1))
			it:add(cf.rekey, rng(0, 1))
			it:add(cf.clen, rng(1, 2))
			it:add(cf.flen, 3 + r.clen):set_generated()
			if r.err then it:add_proto_expert_info(ce_malformed, r.err) end
			table.insert(kinds, "frame")
		else
			local f = r.kind == "init1" and cf.init1 or cf.init2
			local it = t:add(f, rng)
			it:set_text((r.kind == "init1" and "Init1" or "Init2") .. " from " .. r.dir)
			it:add(cf.role, r.dir):set_generated()
			it:add(cf.magic, rng(0, 4))
			it:add(cf.mlen, rng(4, 4))
			table.insert(kinds, r.kind == "init1" and "Init1" or "Init2")
			if r.err then
				it:add_proto_expert_info(ce_malformed, r.err)
			else
				local p = 8
				local ok = true
				if r.kind == "init1" then
					local nc = rng(8, 1):uint()
					it:add(cf.nciphers, rng(8, 1))
					p = 9
					if 9 + 2 * nc + NONCE_LEN > r.len then
						it:add_proto_expert_info(ce_malformed, "nciphers runs past message_len")
						ok = false
					else
						for _ = 1, nc do
							it:add(cf.cipher, rng(p, 2))
							p = p + 2
						end
					end
				else
					it:add(cf.sym, rng(8, 2))
					p = 10
				end
				if ok then
					it:add(cf.nonce, rng(p, NONCE_LEN))
					p = p + NONCE_LEN
					local pl = PUBLEN[c and c.tep or 0] or (r.len - p)
					if p + pl > r.len then
						it:add_proto_expert_info(ce_malformed, "public key runs past message_len")
					else
						if pl > 0 then it:add(cf.pub, rng(p, pl)) end
						if p + pl < r.len then it:add(cf.ignored, rng(p + pl, r.len - p - pl)) end
					end
				end
			end
		end
	end
	if c then
		t:add(cf.tep, c.tep):set_generated()
		t:add(cf.resumed, c.resumed and true or false):set_generated()
	end
	pinfo.cols.protocol:set("tcpcrypt")
	pinfo.cols.info:append(" [tcpcrypt " .. table.concat(kinds, ", ") .. "]")
end

-- Every tcpcrypt record belongs to one TCP stream; keep which, for show.
local conn_of_frame = {}

function tcpcrypt.dissector(tvb, pinfo, tree)
	legacy_options(tvb, pinfo, tree)
	if not pinfo.visited then
		track(tvb, pinfo)
		local st = f_stream()
		if st and recs_by_frame[pinfo.number] then conn_of_frame[pinfo.number] = conns[st.value] end
	end
	local recs = recs_by_frame[pinfo.number]
	if recs then show(tvb, pinfo, tree, recs, conn_of_frame[pinfo.number]) end
end

function tcpcrypt.init()
	conn_of_frame = {}
end

register_postdissector(tcpcrypt, true)
