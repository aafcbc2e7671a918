module example.com/bad

go 1.22

require (
	example.com/busllib v0.0.0
	example.com/mitlib v0.0.0
	example.com/nolicence v0.0.0
	example.com/spdxbusl v0.0.0
)

replace (
	example.com/busllib => ../busllib
	example.com/mitlib => ../mitlib
	example.com/nolicence => ../nolicence
	example.com/spdxbusl => ../spdxbusl
)
