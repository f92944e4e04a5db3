package validators

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// validJSON reports whether body is exactly one JSON value (RFC 8259,
// surrounded by optional whitespace) that the hostile-JSON scan accepts:
// nested at most MaxJSONDepth deep, every string valid UTF-8 (escapes
// included: a lone surrogate is refused), and no object repeating a name,
// compared after unescaping. It is the fast path of checkJSON: one pass,
// no tokens, no allocation for the names of objects of up to
// smallObjectNames members, and the same verdict as the token scan
// (scanJSON) on every input (FuzzJSONValid holds it to that). Which
// problem a refused body has is left to scanJSON.
//
// When want is not empty and body is an object, the value of each of its
// top-level members named in want (the raw name, compared after
// unescaping) is recorded in spans: spans[i] is the [start, end) of
// want[i]'s value in body, or {0, 0} when absent. The webhook_filter's
// static body paths start from there instead of searching the body again.
func validJSON(body []byte, want []string, spans [][2]int) bool {
	return validJSONIndexed(body, want, spans, nil)
}

// validJSONIndexed is validJSON that, when idx is not nil and body is an
// object, also records in idx where each of its top-level members is
// (see memberIndex); idx.ok reports that it did.
func validJSONIndexed(body []byte, want []string, spans [][2]int, idx *memberIndex) bool {
	s := scannerPool.Get().(*jsonScanner)
	s.body, s.pos, s.want, s.spans, s.cur = body, 0, want, spans, -1
	s.idx, s.open = idx, false
	if idx != nil {
		idx.members, idx.ok = idx.members[:0], looksLikeJSONObject(body)
	}
	ok := s.run()
	if idx != nil && !ok {
		idx.members, idx.ok = nil, false
	}
	// Keep no reference into the body in the pool.
	clear(s.objs) // frames left open by a refused body
	s.body, s.want, s.spans, s.idx = nil, nil, nil, nil
	s.names, s.objs, s.esc = s.names[:0], s.objs[:0], s.esc[:0]
	if cap(s.esc) <= 64<<10 {
		scannerPool.Put(s)
	}
	return ok
}

// scannerPool keeps scanners with their stacks, so that a scan allocates
// nothing.
var scannerPool = sync.Pool{New: func() any {
	return &jsonScanner{names: make([]scanName, 0, 64), objs: make([]scanFrame, 0, 32)}
}}

// smallObjectNames is how many names an object keeps in a list, compared
// one by one; past that its names go to a set, so that an object with
// many members costs linear time, not quadratic.
const smallObjectNames = 16

type jsonScanner struct {
	body  []byte
	pos   int
	want  []string
	spans [][2]int
	// cur is the index in want of the top-level member whose value is
	// being scanned (-1: none), which starts at curStart.
	cur      int
	curStart int
	// idx, when not nil, records every top-level member; open: the last
	// one's value is being scanned.
	idx  *memberIndex
	open bool

	// names holds the names of the open objects, innermost last; objs
	// the open containers, innermost last; esc the unescaped names.
	names []scanName
	objs  []scanFrame
	esc   []byte
}

// scanName is a member name: where it is in the body, or (escaped, a
// name with an escape sequence) in esc, unescaped. No pointers: keeping
// names costs no write barrier.
type scanName struct {
	start, end int
	escaped    bool
	fp         uint64 // fingerprint: equal names have equal ones
}

// fingerprint mixes a name's length and first eight bytes: two names
// with different fingerprints differ, so most comparisons stop there.
func fingerprint(name []byte) uint64 {
	fp := uint64(len(name)) << 56
	for i, c := range name[:min(len(name), 8)] {
		fp ^= uint64(c) << (8 * i)
	}
	return fp
}

// bloomBit is the bit of an object's filter of names a fingerprint sets.
func bloomBit(fp uint64) uint64 { return 1 << ((fp * 0x9e3779b97f4a7c15) >> 58) }

func (s *jsonScanner) nameBytes(n scanName) []byte {
	if n.escaped {
		return s.esc[n.start:n.end]
	}
	return s.body[n.start:n.end]
}

// scanFrame is one open container.
type scanFrame struct {
	object bool
	first  int                 // index in names of the object's first name
	bloom  uint64              // bloomBit of every name in the list
	set    map[string]struct{} // the object's names once it has many
}

func (s *jsonScanner) skipSpace() {
	for s.pos < len(s.body) {
		switch s.body[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// run scans the whole body iteratively: containers are frames on a
// stack, never recursion.
func (s *jsonScanner) run() bool {
	for {
		// A value.
		s.skipSpace()
		if s.pos >= len(s.body) {
			return false
		}
		switch c := s.body[s.pos]; c {
		case '{', '[':
			if len(s.objs) >= MaxJSONDepth {
				return false
			}
			s.pos++
			s.objs = append(s.objs, scanFrame{object: c == '{', first: len(s.names)})
			s.skipSpace()
			if s.pos < len(s.body) && (s.body[s.pos] == '}' && c == '{' || s.body[s.pos] == ']' && c == '[') {
				s.pos++
				s.closeFrame()
				break
			}
			if c == '{' {
				if !s.member() {
					return false
				}
			}
			continue
		case '"':
			if _, ok := s.str(false); !ok {
				return false
			}
		case 't':
			if !s.literal("true") {
				return false
			}
		case 'f':
			if !s.literal("false") {
				return false
			}
		case 'n':
			if !s.literal("null") {
				return false
			}
		default:
			if !s.number() {
				return false
			}
		}
		s.endSpan()
		// After a value: close containers, or go on with the next
		// element or member.
		for {
			if len(s.objs) == 0 {
				s.skipSpace()
				return s.pos == len(s.body)
			}
			s.skipSpace()
			if s.pos >= len(s.body) {
				return false
			}
			top := &s.objs[len(s.objs)-1]
			c := s.body[s.pos]
			s.pos++
			if c == ',' {
				if top.object {
					if !s.member() {
						return false
					}
				}
				break
			}
			if top.object && c == '}' || !top.object && c == ']' {
				s.closeFrame()
				continue
			}
			return false
		}
	}
}

// closeFrame pops the innermost container, which may end the value of a
// top-level member.
func (s *jsonScanner) closeFrame() {
	f := &s.objs[len(s.objs)-1]
	if f.object {
		s.names = s.names[:f.first]
		f.set = nil
	}
	s.objs = s.objs[:len(s.objs)-1]
	s.endSpan()
}

// member reads `"name" :` of an object member (the value follows), and
// refuses a name the object already has.
func (s *jsonScanner) member() bool {
	s.skipSpace()
	if s.pos >= len(s.body) || s.body[s.pos] != '"' {
		return false
	}
	sn, ok := s.str(true)
	if !ok {
		return false
	}
	name := s.nameBytes(sn)
	f := &s.objs[len(s.objs)-1]
	if f.set != nil {
		if _, dup := f.set[string(name)]; dup {
			return false
		}
		f.set[string(name)] = struct{}{}
	} else {
		sn.fp = fingerprint(name)
		if bit := bloomBit(sn.fp); f.bloom&bit == 0 {
			f.bloom |= bit // certainly a new name
		} else {
			for _, n := range s.names[f.first:] {
				if n.fp == sn.fp && bytes.Equal(s.nameBytes(n), name) {
					return false
				}
			}
		}
		s.names = append(s.names, sn)
		if len(s.names)-f.first > smallObjectNames {
			f.set = make(map[string]struct{}, 2*smallObjectNames)
			for _, n := range s.names[f.first:] {
				f.set[string(s.nameBytes(n))] = struct{}{}
			}
			s.names = s.names[:f.first]
		}
	}
	s.skipSpace()
	if s.pos >= len(s.body) || s.body[s.pos] != ':' {
		return false
	}
	s.pos++
	if len(s.objs) == 1 {
		if len(s.want) > 0 {
			s.startSpan(name)
		}
		if s.idx != nil && s.idx.ok {
			s.indexMember(sn)
		}
	}
	return true
}

// indexMember records the top-level member named sn, whose value starts
// here. A name with an escape, or one member too many, ends the index:
// lookups then search the body (memberIndex).
func (s *jsonScanner) indexMember(sn scanName) {
	if sn.escaped || len(s.idx.members) == maxIndexedMembers {
		s.idx.members, s.idx.ok = nil, false
		return
	}
	s.skipSpace()
	if s.idx.members == nil {
		s.idx.members = make([]memberSpan, 0, 32)
	}
	s.idx.members = append(s.idx.members, memberSpan{nameStart: sn.start, nameEnd: sn.end, start: s.pos})
	s.open = true
}

// startSpan starts recording the value of the top-level member name
// when want names it.
func (s *jsonScanner) startSpan(name []byte) {
	for i, w := range s.want {
		if w == string(name) {
			s.skipSpace()
			s.cur, s.curStart = i, s.pos
			return
		}
	}
}

// endSpan records the value of the top-level member being recorded,
// which ends here, once the scanner is back in the top-level object.
func (s *jsonScanner) endSpan() {
	if len(s.objs) != 1 {
		return
	}
	if s.cur >= 0 {
		s.spans[s.cur] = [2]int{s.curStart, s.pos}
		s.cur = -1
	}
	if s.open {
		if s.idx.ok {
			s.idx.members[len(s.idx.members)-1].end = s.pos
		}
		s.open = false
	}
}

func (s *jsonScanner) literal(lit string) bool {
	if len(s.body)-s.pos < len(lit) || string(s.body[s.pos:s.pos+len(lit)]) != lit {
		return false
	}
	s.pos += len(lit)
	return true
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *jsonScanner) number() bool {
	b, i := s.body, s.pos
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
	}
	s.pos = i
	return true
}

// plainStringByte marks the bytes a string holds as they are: printable
// ASCII other than '"' and '\\'.
var plainStringByte = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str reads a string starting at its opening quote. With name set it
// returns where its unescaped contents are: in the body when it has no
// escape, else appended to esc.
func (s *jsonScanner) str(name bool) (scanName, bool) {
	b := s.body
	i := s.pos + 1
	start := i
	escStart, escaped := len(s.esc), false
	for {
		// Eight bytes at a time while none of them can end the string,
		// start an escape or need checking (control, non-ASCII). A
		// subtraction borrows only from a byte it flags, so a false
		// positive sits only above a true one: the lowest flagged byte is
		// the first that needs a look.
		for i+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[i:])
			m := ((x - 0x2020202020202020) | ((x ^ 0x2222222222222222) - 0x0101010101010101) |
				((x ^ 0x5c5c5c5c5c5c5c5c) - 0x0101010101010101) | x) & 0x8080808080808080
			if m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		for i < len(b) && plainStringByte[b[i]] {
			i++
		}
		if i >= len(b) {
			return scanName{}, false
		}
		switch c := b[i]; {
		case c == '"':
			s.pos = i + 1
			if !name || !escaped {
				return scanName{start: start, end: i}, true
			}
			s.esc = append(s.esc, b[start:i]...)
			return scanName{start: escStart, end: len(s.esc), escaped: true}, true
		case c == '\\':
			if name {
				s.esc = append(s.esc, b[start:i]...)
				escaped = true
			}
			r, n, ok := unescape(b[i:])
			if !ok {
				return scanName{}, false
			}
			if name {
				s.esc = utf8.AppendRune(s.esc, r)
			}
			i += n
			start = i
		case c < 0x20:
			return scanName{}, false
		default:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				return scanName{}, false
			}
			i += n
		}
	}
}

// unescape decodes the escape sequence at the start of b (b[0] is '\\'):
// its rune and length; a \u escape of a surrogate must be a valid pair.
func unescape(b []byte) (rune, int, bool) {
	if len(b) < 2 {
		return 0, 0, false
	}
	switch b[1] {
	case '"', '\\', '/':
		return rune(b[1]), 2, true
	case 'b':
		return '\b', 2, true
	case 'f':
		return '\f', 2, true
	case 'n':
		return '\n', 2, true
	case 'r':
		return '\r', 2, true
	case 't':
		return '\t', 2, true
	case 'u':
		r, ok := hex4(b[2:])
		if !ok {
			return 0, 0, false
		}
		if !utf16.IsSurrogate(r) {
			return r, 6, true
		}
		if len(b) < 12 || b[6] != '\\' || b[7] != 'u' {
			return 0, 0, false
		}
		r2, ok := hex4(b[8:])
		if !ok {
			return 0, 0, false
		}
		if pair := utf16.DecodeRune(r, r2); pair != utf8.RuneError {
			return pair, 12, true
		}
		return 0, 0, false
	}
	return 0, 0, false
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
