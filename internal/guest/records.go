package guest

// Console records: without a TTY, ferry-init reads the entrypoint's stdout
// and stderr from pipes of their own and writes them to the console as
// records, so that the host can keep the stream of every line. A record is
// one console line:
//
//	0x1E  version '1'  fd '1'|'2'  'F'|'P'  data  '\n'
//
// F: data was a whole line (the '\n' ending the record is its own); P: a
// piece, with no newline of its own (a prompt, a line longer than
// MaxRecordData, the last bytes before a read ended). data never holds a
// '\n'. A console line that is not a record (kernel messages, init's own
// lines, an older ferry-init's plain output, a TTY's output) is untagged:
// the host keeps it as the console's.
//
// The host asks for records in the run config (RunConfig.ConsoleRecords,
// the highest version it reads); init writes them only then, at the
// highest version it knows up to that, so an older host gets the plain
// console it reads.

// RecordVersion is the console record version this code writes and reads.
const RecordVersion = 1

// MaxRecordData is the most data one record carries; longer lines are
// written as pieces (Docker's json-file splits lines at 16 KiB too).
const MaxRecordData = 16 << 10

// recordMark starts every record.
const recordMark = 0x1E

// AppendRecord appends the records for data written by the entrypoint on fd
// (1 stdout, 2 stderr): one per line, pieces of at most MaxRecordData, and
// a final P record for bytes after the last newline.
func AppendRecord(dst []byte, fd int, data []byte) []byte {
	stream := byte('1')
	if fd == 2 {
		stream = '2'
	}
	for len(data) > 0 {
		n, tag := len(data), byte('P')
		for i, c := range data {
			if c == '\n' {
				n, tag = i, 'F'
				break
			}
		}
		if n > MaxRecordData {
			n, tag = MaxRecordData, 'P'
		}
		dst = append(dst, recordMark, '0'+RecordVersion, stream, tag)
		dst = append(dst, data[:n]...)
		dst = append(dst, '\n')
		data = data[n:]
		if tag == 'F' {
			data = data[1:]
		}
	}
	return dst
}

// ParseRecord decodes one console line (with or without its '\n'): the fd
// it came from, whether it is a piece, and its data (without the line's
// newline: for a whole line the caller adds it). ok is false for an
// untagged line or a record of a version this code does not read.
func ParseRecord(line []byte) (fd int, partial bool, data []byte, ok bool) {
	if len(line) > 0 && line[len(line)-1] == '\n' {
		line = line[:len(line)-1]
	}
	if len(line) < 4 || line[0] != recordMark || line[1] != '0'+RecordVersion {
		return 0, false, nil, false
	}
	switch line[2] {
	case '1':
		fd = 1
	case '2':
		fd = 2
	default:
		return 0, false, nil, false
	}
	switch line[3] {
	case 'F':
	case 'P':
		partial = true
	default:
		return 0, false, nil, false
	}
	return fd, partial, line[4:], true
}
