module example.com/good

go 1.22

require example.com/mitlib v0.0.0

replace example.com/mitlib => ../mitlib
