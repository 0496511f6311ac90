package vmm

import (
	"context"
	"net"
)

type (
	ctxT  = context.Context
	connT = net.Conn
)
