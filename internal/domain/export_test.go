package domain

// DemoTeam is demoTeam, for the external tests.
var DemoTeam = demoTeam
