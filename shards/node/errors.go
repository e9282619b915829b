package node

import (
	"errors"
	"fmt"

	"connectrpc.com/connect"
)

// The Connect codes of the control plane (wisp.control.v1.ControlService,
// between nodes) are set in this file, and only here: TestCodesInOneFile
// (shards/api) keeps it so. The client-facing API sets its codes in
// shards/api/errors.go. A control-plane error's text may be internal (the
// peer logs it), except for the refusals written for the operator (notFound,
// failedPrecondition, invalidArgument below), which the node that took the
// operator's request relays as they are (relayed).

// controlError gives an error of the control plane its code.
func controlError(code connect.Code, err error) error {
	return connect.NewError(code, err)
}

// invalidArgument, failedPrecondition and notFound are the control plane's
// refusals written for the operator; relayed passes them on.
func invalidArgument(format string, args ...any) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, args...))
}

func failedPrecondition(format string, args ...any) error {
	return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(format, args...))
}

func notFound(format string, args ...any) error {
	return connect.NewError(connect.CodeNotFound, fmt.Errorf(format, args...))
}

// relayed passes on a refusal another node wrote for the operator (its
// code and message, without this node's wrapping).
func relayed(err error) error {
	return connect.NewError(connect.CodeOf(err), errors.New(errMessage(err)))
}

// errNoMetaLeader: no member answered a call only the meta group's leader
// takes; the client retries.
var errNoMetaLeader = connect.NewError(connect.CodeUnavailable, errors.New("no node leading the meta group answered; try again"))

// errNotMetaLeader: a control call only the meta group's leader answers
// reached another node; the caller tries the next (onMetaLeader).
var errNotMetaLeader = controlError(connect.CodeUnavailable, errors.New("this node does not lead the meta group"))

// errNotHosted: the node holds no replica of the shard (it moved away).
var errNotHosted = errors.New("no replica of the shard on this node")

// errMessage is err's message without Connect's code prefix.
func errMessage(err error) string {
	if ce, ok := err.(*connect.Error); ok {
		return ce.Message()
	}
	return err.Error()
}
