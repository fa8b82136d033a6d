// Package config loads a node's configuration in layers and writes the
// commented config file, both from the same Go struct.
//
// Precedence, lowest to highest: the defaults the caller puts in the struct,
// the TOML file, PARLEY_* environment variables, then command-line flags
// (which the caller applies with Set). Every setting has one dotted key,
// built from the `toml` tags of the struct fields that lead to it
// ("store.cache_bytes"); its environment variable is PARLEY_ followed by the
// key in upper case with dots as underscores (PARLEY_STORE_CACHE_BYTES).
// A field's `comment` tag documents it in the rendered file, so the file
// `parleyd init` writes lists every setting with its default.
//
// Supported field types: string, bool, signed and unsigned integers,
// float64, time.Duration (written "30s"), []string (comma-separated in
// environment variables and flags) and nested structs (TOML tables).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// EnvPrefix starts every environment variable that sets a config key.
const EnvPrefix = "PARLEY_"

// ErrUnknownKey is returned for a file key, environment variable or flag
// that names no setting.
var ErrUnknownKey = errors.New("config: unknown setting")

var durationType = reflect.TypeOf(time.Duration(0))

// LoadFile decodes the TOML file at path into cfg (a pointer to a struct
// holding the defaults). Keys the struct does not have are an error, so a
// misspelt setting is never silently ignored.
func LoadFile(path string, cfg any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	md, err := toml.Decode(string(b), cfg)
	if err != nil {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return fmt.Errorf("%w in %s: %s", ErrUnknownKey, path, strings.Join(keys, ", "))
	}
	return nil
}

// ApplyEnv sets every key named by a PARLEY_* variable in environ (as from
// os.Environ). Variables that name no key are an error, except those listed
// in ignore (variables with other meanings, such as PARLEY_CONFIG).
func ApplyEnv(cfg any, environ []string, ignore ...string) error {
	byEnv := map[string]string{}
	for _, k := range Keys(cfg) {
		byEnv[EnvName(k)] = k
	}
	var errs []error
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) || contains(ignore, name) {
			continue
		}
		key, ok := byEnv[name]
		if !ok {
			errs = append(errs, fmt.Errorf("%w: environment variable %s", ErrUnknownKey, name))
			continue
		}
		if err := Set(cfg, key, value); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// EnvName returns the environment variable for a dotted key.
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Set parses value into the setting named by the dotted key.
func Set(cfg any, key, value string) error {
	f, ok := lookup(reflect.ValueOf(cfg).Elem(), strings.Split(key, "."))
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownKey, key)
	}
	if err := parseInto(f, value); err != nil {
		return fmt.Errorf("config: %s: %w", key, err)
	}
	return nil
}

func lookup(v reflect.Value, path []string) (reflect.Value, bool) {
	for _, name := range path {
		if v.Kind() != reflect.Struct {
			return reflect.Value{}, false
		}
		found := false
		for i := 0; i < v.NumField(); i++ {
			if tagName(v.Type().Field(i)) == name {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			return reflect.Value{}, false
		}
	}
	return v, v.Kind() != reflect.Struct
}

func parseInto(f reflect.Value, s string) error {
	if f.Type() == durationType {
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		f.SetInt(int64(d))
		return nil
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		f.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, f.Type().Bits())
		if err != nil {
			return err
		}
		f.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, f.Type().Bits())
		if err != nil {
			return err
		}
		f.SetUint(n)
	case reflect.Float32, reflect.Float64:
		n, err := strconv.ParseFloat(s, f.Type().Bits())
		if err != nil {
			return err
		}
		f.SetFloat(n)
	case reflect.Slice:
		if f.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("unsupported list type %s", f.Type())
		}
		var items []string
		for _, it := range strings.Split(s, ",") {
			if it = strings.TrimSpace(it); it != "" {
				items = append(items, it)
			}
		}
		f.Set(reflect.ValueOf(items))
	default:
		return fmt.Errorf("unsupported type %s", f.Type())
	}
	return nil
}

func tagName(sf reflect.StructField) string {
	name, _, _ := strings.Cut(sf.Tag.Get("toml"), ",")
	if name == "" || name == "-" || !sf.IsExported() {
		return ""
	}
	return name
}

// Keys returns every setting's dotted key, in struct order.
func Keys(cfg any) []string {
	var keys []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			name := tagName(sf)
			if name == "" {
				continue
			}
			if sf.Type.Kind() == reflect.Struct && sf.Type != durationType {
				walk(sf.Type, prefix+name+".")
				continue
			}
			keys = append(keys, prefix+name)
		}
	}
	walk(reflect.TypeOf(cfg).Elem(), "")
	return keys
}

// Render writes cfg as a TOML file in which every setting is present with
// its value and preceded by its `comment` tag, sections in struct order.
func Render(cfg any, header string) []byte {
	var buf bytes.Buffer
	for _, line := range strings.Split(strings.TrimSpace(header), "\n") {
		buf.WriteString("# " + line + "\n")
	}
	var walk func(v reflect.Value, section string)
	walk = func(v reflect.Value, section string) {
		t := v.Type()
		var tables []int
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			name := tagName(sf)
			if name == "" {
				continue
			}
			if sf.Type.Kind() == reflect.Struct && sf.Type != durationType {
				tables = append(tables, i)
				continue
			}
			buf.WriteString("\n")
			writeComment(&buf, sf.Tag.Get("comment"))
			fmt.Fprintf(&buf, "%s = %s\n", name, tomlValue(v.Field(i)))
		}
		for _, i := range tables {
			sf := t.Field(i)
			full := tagName(sf)
			if section != "" {
				full = section + "." + full
			}
			buf.WriteString("\n")
			writeComment(&buf, sf.Tag.Get("comment"))
			fmt.Fprintf(&buf, "[%s]\n", full)
			walk(v.Field(i), full)
		}
	}
	walk(reflect.ValueOf(cfg).Elem(), "")
	return buf.Bytes()
}

func writeComment(buf *bytes.Buffer, c string) {
	for _, line := range strings.Split(c, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			buf.WriteString("# " + line + "\n")
		}
	}
}

func tomlValue(f reflect.Value) string {
	if f.Type() == durationType {
		return strconv.Quote(time.Duration(f.Int()).String())
	}
	switch f.Kind() {
	case reflect.String:
		return strconv.Quote(f.String())
	case reflect.Bool:
		return strconv.FormatBool(f.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(f.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(f.Uint(), 10)
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(f.Float(), 'g', -1, 64)
	case reflect.Slice:
		items := make([]string, f.Len())
		for i := range items {
			items[i] = strconv.Quote(f.Index(i).String())
		}
		return "[" + strings.Join(items, ", ") + "]"
	}
	panic(fmt.Sprintf("config: unsupported type %s", f.Type()))
}
