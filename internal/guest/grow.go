package guest

// Growing a volume while its machine runs re-executes ferry-init as a
// helper through an exec request (BuildHelper, as docker cp does): argv is
// [BuildHelper, GrowHelperArg, TARGET], run as root after the host grew
// the device of the volume mounted at TARGET. The helper grows the
// volume's dm-crypt mapping (when it is encrypted) and its ext4 online to
// the device's new size; it exits 0, or 1 with one line on stderr.
const GrowHelperArg = "ferry-grow-volume"
