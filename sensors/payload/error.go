package payload

import "strconv"

// Reason classifies why a message was rejected. The set is closed (see
// Reasons) so that the daemon can export one counter per reason.
type Reason string

// The reasons a message, or part of one, is rejected.
const (
	// ReasonEmpty: the payload is empty or only white space.
	ReasonEmpty Reason = "empty"
	// ReasonTooLarge: the payload exceeds Config.MaxPayload; it was not parsed.
	ReasonTooLarge Reason = "too_large"
	// ReasonNotANumber: a payload (or value) that must be a number is not.
	ReasonNotANumber Reason = "not_a_number"
	// ReasonNonFinite: a value is NaN, ±Inf or outside the float64 range.
	ReasonNonFinite Reason = "non_finite"
	// ReasonInvalidJSON: the payload is not JSON, or not the JSON shape
	// the format needs (e.g. an object).
	ReasonInvalidJSON Reason = "invalid_json"
	// ReasonMissingField: a configured field path (or a line-protocol tag
	// the series template names) is absent.
	ReasonMissingField Reason = "missing_field"
	// ReasonNotNumeric: a configured field holds a string, boolean, null,
	// object or array that the configuration does not allow as a number.
	ReasonNotNumeric Reason = "not_numeric"
	// ReasonBadTimestamp: the payload's timestamp cannot be parsed or is
	// out of range; the values were kept with the ingest time.
	ReasonBadTimestamp Reason = "bad_timestamp"
	// ReasonLineSyntax: a line of InfluxDB line protocol does not parse.
	ReasonLineSyntax Reason = "line_syntax"
	// ReasonNoValues: the payload parsed but held no numeric value.
	ReasonNoValues Reason = "no_values"
	// ReasonBadTopic: the series template names a topic segment the topic
	// does not have.
	ReasonBadTopic Reason = "bad_topic"
	// ReasonBadName: a series name came out empty, longer than
	// edged.MaxStringLen, not UTF-8, or with control characters.
	ReasonBadName Reason = "bad_name"
)

var reasons = []Reason{
	ReasonEmpty, ReasonTooLarge, ReasonNotANumber, ReasonNonFinite, ReasonInvalidJSON,
	ReasonMissingField, ReasonNotNumeric, ReasonBadTimestamp, ReasonLineSyntax,
	ReasonNoValues, ReasonBadTopic, ReasonBadName,
}

// Reasons returns every Reason, for registering metrics up front.
func Reasons() []Reason { return append([]Reason(nil), reasons...) }

// hints say what to do, per reason; Error appends them.
var hints = map[Reason]string{
	ReasonEmpty:        "the publisher sent nothing; check the device's publish settings",
	ReasonTooLarge:     "raise max_payload for this subscription if such sizes are expected",
	ReasonNotANumber:   "format number wants one decimal number such as 21.5; use json, line or a preset for structured payloads",
	ReasonNonFinite:    "NaN and infinities cannot be stored; the sensor is probably reporting a failed read",
	ReasonInvalidJSON:  "check that the format configured for this topic matches what the device publishes",
	ReasonMissingField: "compare the configured paths with a sample payload (mosquitto_sub -v -t TOPIC)",
	ReasonNotNumeric:   "set strings: true or booleans: true if such values are expected, or choose another path",
	ReasonBadTimestamp: "check time.path and time.format; the values were kept with the ingest time",
	ReasonLineSyntax:   "see the InfluxDB line protocol reference; the other lines were kept",
	ReasonNoValues:     "the payload held no numeric value; configure fields or check the format",
	ReasonBadTopic:     "the series template refers to a topic segment this topic lacks; fix series or the topic filter",
	ReasonBadName:      "series names must be non-empty UTF-8 without control characters, at most 1024 bytes; fix series or the field names",
}

// Error is a rejected message or part of one. Decoders return it as a
// *Error; errors.As finds it.
type Error struct {
	Reason Reason
	// Detail says what was wrong, quoting the offending bytes (shortened).
	Detail string
	// Topic is the MQTT topic the message came on.
	Topic string
}

func (e *Error) Error() string {
	s := "payload: topic " + strconv.Quote(e.Topic) + ": " + string(e.Reason)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if h := hints[e.Reason]; h != "" {
		s += " (" + h + ")"
	}
	return s
}

// problems collects the problems of one message. The first one becomes
// the returned *Error; later ones are only counted, so that a message
// yields exactly one error.
type problems struct {
	first *Error
	more  int
}

func (p *problems) add(topic string, r Reason, detail string) {
	if p.first == nil {
		p.first = &Error{Reason: r, Detail: detail, Topic: topic}
		return
	}
	p.more++
}

func (p *problems) err() error {
	if p.first == nil {
		return nil
	}
	if p.more > 0 {
		p.first.Detail += " (and " + strconv.Itoa(p.more) + " more problems in this message)"
	}
	return p.first
}

// quote shortens b for an error message.
func quote(b []byte) string {
	const max = 64
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "…"
	}
	return strconv.Quote(string(b))
}
