module example.com/busllib

go 1.22
