package eno

import "errors"

// Errors of the encoders and builders.
var (
	ErrNoRoom        = errors.New("eno: option does not fit the space given")
	ErrBadTEP        = errors.New("eno: TEP identifier outside 0x20-0x7f")
	ErrDuplicateTEP  = errors.New("eno: TEP offered twice (RFC 8547 §4.5 point 3)")
	ErrDataWithoutV  = errors.New("eno: suboption data with the v bit clear")
	ErrDataTooLong   = errors.New("eno: suboption data that is not last must be 1 to 32 bytes (ENO-20, ENO-D4)")
	ErrImplicitValue = errors.New("eno: implicit global suboption must be 0x00 (ENO-D1)")
)

// NonSYNLen is the size of the non-SYN-form option tcpcrypt sends.
const NonSYNLen = 2

// PutNonSYN writes the non-SYN-form option `45 02`: N = 0 because tcpcrypt
// gives non-SYN contents no meaning (ENO-1). It is the option of the active
// opener's third segment (ENO-27) and of every segment until a non-SYN
// segment arrives (ENO-26).
func PutNonSYN(dst []byte) (int, error) {
	if len(dst) < NonSYNLen {
		return 0, ErrNoRoom
	}
	dst[0], dst[1] = Kind, NonSYNLen
	return NonSYNLen, nil
}

// subLen is the encoded size of one suboption; last marks the option's
// final suboption, whose data needs no length byte (§4.4).
func subLen(s Suboption, last bool) (int, error) {
	if !TEP(s.Byte & 0x7f).Valid() {
		return 0, ErrBadTEP
	}
	if s.Byte&0x80 == 0 {
		if len(s.Data) != 0 {
			return 0, ErrDataWithoutV
		}
		return 1, nil
	}
	if last {
		return 1 + len(s.Data), nil
	}
	if len(s.Data) == 0 || len(s.Data) > MaxLengthByteData {
		return 0, ErrDataTooLong
	}
	return 2 + len(s.Data), nil
}

// putSub writes one suboption at dst[0:] and returns its size; subLen has
// already accepted it and dst is large enough.
func putSub(dst []byte, s Suboption, last bool) int {
	if s.Byte&0x80 == 0 {
		dst[0] = s.Byte
		return 1
	}
	i := 0
	if !last { // ENO-20: data that is not last gets a length byte
		dst[0] = 0x80 | byte(len(s.Data)-1)
		i = 1
	}
	dst[i] = s.Byte
	i++
	return i + copy(dst[i:], s.Data)
}

// EncodedLen returns the size of the option EncodeSYN writes, kind and
// length bytes included.
func EncodedLen(explicitGlobal bool, subs []Suboption) (int, error) {
	n := 2
	if explicitGlobal {
		n++
	}
	for i, s := range subs {
		l, err := subLen(s, i == len(subs)-1)
		if err != nil {
			return 0, err
		}
		n += l
	}
	if n > MaxOptionLen {
		return 0, ErrOptionTooLong
	}
	return n, nil
}

// EncodeSYN writes a SYN-form option with subs in wire order (the last is
// host B's most preferred, ENO-D3) into dst and returns its size. With
// explicitGlobal the global suboption g goes first, its z bits cleared
// (ENO-15); without it g must be 0 (the implicit 0x00, ENO-D1). A
// suboption with data gets a length byte unless it is last (ENO-20).
// EncodeSYN does not allocate.
func EncodeSYN(dst []byte, g Global, explicitGlobal bool, subs []Suboption) (int, error) {
	if !explicitGlobal && g.Meaning() != 0 {
		return 0, ErrImplicitValue
	}
	n, err := EncodedLen(explicitGlobal, subs)
	if err != nil {
		return 0, err
	}
	if len(dst) < n {
		return 0, ErrNoRoom
	}
	dst[0], dst[1] = Kind, byte(n)
	i := 2
	if explicitGlobal {
		dst[i] = byte(g.Meaning())
		i++
	}
	for j, s := range subs {
		i += putSub(dst[i:], s, j == len(subs)-1)
	}
	return n, nil
}
