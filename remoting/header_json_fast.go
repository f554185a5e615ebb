package remoting

import (
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// decodeJSONHeaderFast parses the common shape of a JSON header without
// reflection: the known keys, plain integers, and strings with valid UTF-8.
// Anything else (floats, nulls or numbers in extFields,
// unknown keys, malformed input) returns ok=false and the caller falls back
// to encoding/json, which is authoritative; where this parser succeeds it
// produces exactly what the fallback would (FuzzDecodeJSONHeader checks).
func decodeJSONHeaderFast(b []byte, respWire bool) (*Command, bool) {
	// One copy of the whole header; the strings it yields are slices of it,
	// not an allocation each.
	p := jsonScanner{b: b, s: string(b)}
	h := Command{SerializeType: SerializeJSON}
	var arr [16]Field
	fs := arr[:0]
	hasExt := false
	p.ws()
	if !p.byte('{') {
		return nil, false
	}
	p.ws()
	if p.byte('}') {
		return finishDecoded(&h, nil, false, respWire), p.end()
	}
	c := &h
	for {
		p.ws()
		key, ok := p.plainString()
		if !ok {
			return nil, false
		}
		p.ws()
		if !p.byte(':') {
			return nil, false
		}
		p.ws()
		switch key {
		case "code":
			v, ok := p.int(16)
			if !ok {
				return nil, false
			}
			c.Code = int16(v)
		case "version":
			v, ok := p.int(16)
			if !ok {
				return nil, false
			}
			c.Version = int16(v)
		case "opaque":
			v, ok := p.int(32)
			if !ok {
				return nil, false
			}
			c.Opaque = int32(v)
		case "flag":
			v, ok := p.int(32)
			if !ok {
				return nil, false
			}
			c.Flag = int32(v)
		case "language":
			s, ok := p.plainString()
			if !ok {
				return nil, false
			}
			c.Language = ParseLanguage(s)
		case "remark":
			if p.literal("null") {
				c.Remark = ""
				break
			}
			s, ok := p.plainString()
			if !ok {
				return nil, false
			}
			c.Remark = s
		case "extFields":
			if p.literal("null") {
				fs, hasExt = fs[:0], false
				break
			}
			if fs, ok = p.stringMap(fs[:0]); !ok {
				return nil, false
			}
			hasExt = true
		case "serializeTypeCurrentRPC":
			if _, ok := p.plainString(); !ok {
				return nil, false
			}
		default:
			return nil, false
		}
		p.ws()
		if p.byte(',') {
			continue
		}
		if p.byte('}') {
			if !p.end() {
				return nil, false
			}
			return finishDecoded(c, fs, hasExt, respWire), true
		}
		return nil, false
	}
}

type jsonScanner struct {
	b []byte
	s string // string(b): plain strings are returned as slices of it
	i int
}

func (p *jsonScanner) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonScanner) byte(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *jsonScanner) literal(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

// end reports whether only whitespace follows.
func (p *jsonScanner) end() bool {
	p.ws()
	return p.i == len(p.b)
}

// plainString reads a JSON string with valid UTF-8 and no control
// characters; escapes are decoded as encoding/json does (a lone surrogate
// becomes U+FFFD).
func (p *jsonScanner) plainString() (string, bool) {
	if !p.byte('"') {
		return "", false
	}
	start := p.i
	ascii := true
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			if !ascii && !utf8.Valid(s) {
				return "", false
			}
			return p.s[start : p.i-1], true
		case c == '\\':
			p.i = start
			return p.escapedString()
		case c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		p.i++
	}
	return "", false
}

// escapedString continues plainString for a string with escapes; p.i is
// just after the opening quote.
func (p *jsonScanner) escapedString() (string, bool) {
	out := make([]byte, 0, 64)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			if !utf8.Valid(out) {
				return "", false
			}
			return string(out), true
		case c < 0x20:
			return "", false
		case c != '\\':
			out = append(out, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.b) {
			return "", false
		}
		e := p.b[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := p.hex4()
			if r < 0 {
				return "", false
			}
			if utf16.IsSurrogate(r) {
				save := p.i
				if p.literal(`\u`) {
					if r2 := p.hex4(); r2 >= 0 {
						if d := utf16.DecodeRune(r, r2); d != unicode.ReplacementChar {
							out = utf8.AppendRune(out, d)
							continue
						}
					}
				}
				p.i = save
				r = unicode.ReplacementChar
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", false
		}
	}
	return "", false
}

// hex4 reads four hex digits, or returns -1.
func (p *jsonScanner) hex4() rune {
	if len(p.b)-p.i < 4 {
		return -1
	}
	var r rune
	for _, c := range p.b[p.i : p.i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	p.i += 4
	return r
}

// int reads a JSON integer (no fraction, exponent or leading zeros) that
// fits in bits.
func (p *jsonScanner) int(bits int) (int64, bool) {
	start := p.i
	if p.i < len(p.b) && p.b[p.i] == '-' {
		p.i++
	}
	digits := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	n := p.i - digits
	if n == 0 || n > 1 && p.b[digits] == '0' {
		return 0, false
	}
	if p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		return 0, false
	}
	v, err := strconv.ParseInt(string(p.b[start:p.i]), 10, bits)
	return v, err == nil
}

// stringMap reads an object whose keys and values are plain strings,
// appending its members to fs in order.
func (p *jsonScanner) stringMap(fs []Field) ([]Field, bool) {
	if !p.byte('{') {
		return fs, false
	}
	p.ws()
	if p.byte('}') {
		return fs, true
	}
	for {
		p.ws()
		k, ok := p.plainString()
		if !ok {
			return fs, false
		}
		p.ws()
		if !p.byte(':') {
			return fs, false
		}
		p.ws()
		v, ok := p.plainString()
		if !ok {
			return fs, false
		}
		fs = append(fs, Field{k, v})
		p.ws()
		if p.byte(',') {
			continue
		}
		if p.byte('}') {
			return fs, true
		}
		return fs, false
	}
}
