// Package nolicence is a fixture without a licence file.
package nolicence

// X is exported.
const X = 1
