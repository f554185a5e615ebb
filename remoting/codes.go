package remoting

import "strconv"

// Format constants. Everything in this block is part of the wire format.
const (
	// DefaultMaxFrameSize is the largest frame (the value of the length
	// word) accepted by default; the Java NettyDecoder uses the same limit.
	DefaultMaxFrameSize = 16 << 20

	// maxHeaderLen is the largest header the 24-bit headerLen can describe.
	maxHeaderLen = 1<<24 - 1

	// binaryFixedLen is the size of the fixed part of a ROCKETMQ header:
	// code(2) language(1) version(2) opaque(4) flag(4) remarkLen(4) extLen(4).
	binaryFixedLen = 21

	// FlagResponse (bit0) marks a response; FlagOneway (bit1) a request
	// that expects no answer.
	FlagResponse int32 = 1 << 0
	FlagOneway   int32 = 1 << 1

	// CurrentVersion is the version Ferry writes in the commands it builds:
	// the ordinal of Java MQVersion V4_9_8, what a 4.9.8 broker answers with.
	// It is >= V4_9_4 (401), so Java name servers answer it in standard JSON.
	CurrentVersion int16 = 409
)

// SerializeType selects the header encoding of a frame (top byte of the
// header word).
type SerializeType uint8

// Serialize types (part of the format).
const (
	SerializeJSON     SerializeType = 0
	SerializeRocketMQ SerializeType = 1
)

func (t SerializeType) String() string {
	switch t {
	case SerializeJSON:
		return "JSON"
	case SerializeRocketMQ:
		return "ROCKETMQ"
	}
	return "SerializeType(" + strconv.Itoa(int(t)) + ")"
}

// LanguageCode is the client language carried in every header: a name in
// JSON headers, a byte in binary headers.
type LanguageCode uint8

// Language codes (part of the format: Java LanguageCode ordinals).
const (
	LanguageJava   LanguageCode = 0
	LanguageCPP    LanguageCode = 1
	LanguageDotNet LanguageCode = 2
	LanguagePython LanguageCode = 3
	LanguageDelphi LanguageCode = 4
	LanguageErlang LanguageCode = 5
	LanguageRuby   LanguageCode = 6
	LanguageOther  LanguageCode = 7
	LanguageHTTP   LanguageCode = 8
	LanguageGo     LanguageCode = 9
	LanguagePHP    LanguageCode = 10
	LanguageOMS    LanguageCode = 11
	LanguageRust   LanguageCode = 12
)

// DefaultLanguage is what Ferry writes in the commands it builds. A Java
// broker says JAVA, and every client version's enum parser knows that name,
// so Ferry says it too.
const DefaultLanguage = LanguageJava

var languageNames = [...]string{
	LanguageJava: "JAVA", LanguageCPP: "CPP", LanguageDotNet: "DOTNET",
	LanguagePython: "PYTHON", LanguageDelphi: "DELPHI", LanguageErlang: "ERLANG",
	LanguageRuby: "RUBY", LanguageOther: "OTHER", LanguageHTTP: "HTTP",
	LanguageGo: "GO", LanguagePHP: "PHP", LanguageOMS: "OMS", LanguageRust: "RUST",
}

// String returns the Java enum name; unknown codes read as OTHER.
func (l LanguageCode) String() string {
	if int(l) < len(languageNames) {
		return languageNames[l]
	}
	return "OTHER"
}

// normalize maps codes Ferry does not know to LanguageOther, so that a
// decoded header always re-encodes to the same value.
func (l LanguageCode) normalize() LanguageCode {
	if int(l) < len(languageNames) {
		return l
	}
	return LanguageOther
}

// ParseLanguage returns the code for a Java enum name; unknown names give
// LanguageOther.
func ParseLanguage(name string) LanguageCode {
	for i, n := range languageNames {
		if n == name {
			return LanguageCode(i)
		}
	}
	return LanguageOther
}
