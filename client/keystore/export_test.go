package keystore

// Test seams, exported to the external test package.
var (
	WithKDF   = withKDF
	WithFault = withFault
)

// KDFFunc is the signature WithKDF takes.
type KDFFunc = kdfFunc

// Write steps for WithFault.
const (
	StepCreate  = stepCreate
	StepWrite   = stepWrite
	StepSync    = stepSync
	StepClose   = stepClose
	StepRename  = stepRename
	StepSyncDir = stepSyncDir
)

// HeaderSize parses the header at the start of b and returns its length.
func HeaderSize(b []byte) (int, error) {
	_, n, err := parseHeader(b)
	return n, err
}
