// SPDX-License-Identifier: (MIT OR BUSL-1.1) AND ISC

// Command good is a fixture that must pass the licence gate.
package main

import (
	"fmt"

	"example.com/mitlib"
)

// tag is not a licence header: a string literal holding the tag is ignored.
const tag = "SPDX-License-Identifier: BUSL-1.1"

func main() { fmt.Println(mitlib.X, tag) }
