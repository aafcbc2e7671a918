// SPDX-License-Identifier: MIT

// Package mitlib is an MIT-licensed fixture.
package mitlib

// X is exported.
const X = 1
