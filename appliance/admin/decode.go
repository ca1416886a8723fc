package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"
)

// errMalformed marks a body that is not one well-formed JSON value.
var errMalformed = errors.New("malformed JSON")

// decodeStrict decodes body, one JSON object, into v (a pointer to a
// struct). Field names must match exactly (encoding/json alone would take
// any case), unknown fields are refused, and every error that concerns one
// field is a *FieldError naming its JSON path.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: empty body", errMalformed)
		}
		return fmt.Errorf("%w: %v", errMalformed, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: more than one JSON value", errMalformed)
	}
	if _, ok := tree.(map[string]any); !ok {
		return fmt.Errorf("%w: want a JSON object", errMalformed)
	}
	if err := checkTree(tree, reflect.TypeOf(v).Elem(), ""); err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return &FieldError{Field: te.Field, Msg: fmt.Sprintf("must be %s (got %s)", kindName(te.Type), te.Value)}
		}
		return fmt.Errorf("%w: %v", errMalformed, err)
	}
	return nil
}

var durationType = reflect.TypeFor[Duration]()

// checkTree walks a decoded JSON value against the Go type it will be
// decoded into and reports the first unknown field, or a value a field's
// own UnmarshalJSON would refuse (whose error would not name the field).
func checkTree(val any, t reflect.Type, path string) error {
	if val == nil {
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == durationType {
		var d Duration
		raw, _ := json.Marshal(val)
		if err := d.UnmarshalJSON(raw); err != nil {
			return &FieldError{Field: path, Msg: err.Error()}
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := val.(map[string]any)
		if !ok {
			return nil // a type error; json.Unmarshal names it
		}
		fields := jsonFields(t)
		// Sorted: the first unknown field reported is the same each time.
		for _, name := range slices.Sorted(maps.Keys(obj)) {
			ft, known := fields[name]
			sub := join(path, name)
			if !known {
				return &FieldError{Field: sub, Msg: "unknown field"}
			}
			if err := checkTree(obj[name], ft, sub); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		arr, ok := val.([]any)
		if !ok {
			return nil
		}
		for i, e := range arr {
			if err := checkTree(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// jsonFields maps the JSON names of t's exported fields to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	m := make(map[string]reflect.Type, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = f.Type
	}
	return m
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if t == reflect.TypeFor[time.Duration]() {
			return "a duration"
		}
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return t.String()
}
