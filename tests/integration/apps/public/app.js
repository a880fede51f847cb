console.log("test js");
