// Command bad is a fixture that must fail the licence gate three times.
package main

import (
	"fmt"

	"example.com/busllib"
	"example.com/mitlib"
	"example.com/nolicence"
	"example.com/spdxbusl/physical"
)

func main() { fmt.Println(busllib.X, mitlib.X, nolicence.X, physical.X) }
