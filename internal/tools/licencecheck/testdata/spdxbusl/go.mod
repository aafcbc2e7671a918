module example.com/spdxbusl

go 1.22
