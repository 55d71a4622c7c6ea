Console.Error.WriteLine("Wzp.Silo: the silo host is not built yet (issue 4).");
return 1;
